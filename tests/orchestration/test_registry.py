"""The model registry on a real (temporary) BentoML model store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qanchor import registry
from qanchor.errors import QAnchorError
from qanchor.model.artifact import read_config
from qanchor.model.identity import model_id


def write_metrics(path: Path, auc: float) -> Path:
    per = {"s1": {"auc": auc, "ks": 0.2}}
    m = {"dataset": "toy", "scenarios": ["s1"],
         "models": {"qanchor_tuned": {"mean_auc": auc, "mean_ks": 0.2, "per_scenario": per}}}  # fmt: skip
    path.write_text(json.dumps(m))
    return path


@pytest.fixture
def model_copy(tiny_model: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model with one (fake-content) scenario adapter directory."""
    out = tmp_path / "model"
    shutil.copytree(tiny_model, out)
    (out / "scenarios" / "s1").mkdir(parents=True)
    (out / "scenarios" / "s1" / "meta.json").write_text('{"name": "s1"}')
    return out


def test_register_attaches_metrics_and_manifest_and_is_idempotent(
    model_copy: Path, tmp_path: Path
) -> None:
    name = "qanchor-reg-a"
    assert registry.versions(name) == []
    tag = registry.register(
        model_copy, write_metrics(tmp_path / "m.json", 0.71), name, {"run": "r1"}
    )
    (v,) = registry.versions(name)
    # One identity: the version is the content hash the engine keys its caches with.
    assert v.tag == tag == f"{name}:{model_id(model_copy)}"
    assert v.labels["mean_auc"] == "0.7100" and v.labels["run"] == "r1"
    assert (
        v.labels["dataset"]
        == json.loads((model_copy / "data_manifest.json").read_text())["content_hash"][:12]
    )
    assert v.metrics["models"]["qanchor_tuned"]["mean_auc"] == 0.71
    assert v.metadata["scenarios"] == ["s1"]
    assert (v.path / "scenarios" / "s1" / "meta.json").is_file()
    assert read_config(v.path)["format_version"] == read_config(model_copy)["format_version"]
    assert (v.path.parent / "metrics.json").is_file()
    # A retried registration of the same content does not add a version (nor a re-evaluation).
    assert registry.register(model_copy, tmp_path / "m.json", name) == tag
    assert registry.register(model_copy, write_metrics(tmp_path / "n.json", 0.8), name) == tag
    assert len(registry.versions(name)) == 1


def test_promote_and_load_promoted(model_copy: Path, tmp_path: Path) -> None:
    name = "qanchor-reg-b"
    first = registry.register(model_copy, write_metrics(tmp_path / "a.json", 0.70), name)
    with pytest.raises(QAnchorError, match="no promoted"):
        registry.load_promoted(name)
    registry.promote(first, "first model")
    assert registry.load_promoted(name) == registry.get(first).path
    (model_copy / "scenarios" / "s2").mkdir()  # new content -> a new version
    (model_copy / "scenarios" / "s2" / "meta.json").write_text('{"name": "s2"}')
    second = registry.register(model_copy, write_metrics(tmp_path / "b.json", 0.72), name)
    assert second != first and registry.promoted(name).tag == first
    registry.promote(second, "better")
    registry.promote(second, "retried")  # no-op
    assert registry.promoted(name).tag == second
    assert registry.load_promoted(name, tag=first) == registry.get(first).path  # pinned version
    pointer = json.loads((registry.bentoml_home() / "registry" / f"{name}.json").read_text())
    assert pointer["tag"] == second
    assert [h["tag"] for h in pointer["history"]] == [first, second]  # the promotions, in order


def test_unknown_tag_is_a_clear_error() -> None:
    with pytest.raises(QAnchorError, match="no registered model"):
        registry.get("qanchor-nothing:abc")
