"""Drift finds what serves: the promoted model and the build it was trained on, from the registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qanchor import registry
from qanchor.errors import QAnchorError
from qanchor.monitoring.job import resolve_served, training_build


def test_served_resolves_to_the_promoted_model_and_its_training_build(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    assert training_build(tiny_model) == built_tiny.resolve()
    model = shutil.copytree(tiny_model, tmp_path / "model")
    name = "qanchor-served-test"  # not the DAG tests' store name
    tag = registry.register(model, name=name)
    registry.promote(tag, "served-inputs test")
    reference, served = resolve_served("served", "served", name)
    assert served == registry.get(tag).path and reference == built_tiny.resolve()
    # Explicit paths pass through; only the word `served` consults the registry.
    assert resolve_served(tmp_path / "ref", None) == (tmp_path / "ref", None)
    assert resolve_served(tmp_path / "ref", "served", name)[0] == tmp_path / "ref"


def test_a_missing_or_rebuilt_training_build_is_a_clear_error(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    model = shutil.copytree(tiny_model, tmp_path / "model")
    manifest = json.loads((model / "data_manifest.json").read_text())
    rebuilt = shutil.copytree(built_tiny, tmp_path / "built")
    (model / "data_manifest.json").write_text(json.dumps({**manifest, "built_dir": str(rebuilt)}))
    assert training_build(model) == rebuilt  # same content, moved: still the training build
    other = json.loads((rebuilt / "manifest.json").read_text()) | {"content_hash": "0" * 64}
    (rebuilt / "manifest.json").write_text(json.dumps(other))
    with pytest.raises(QAnchorError, match="was rebuilt since"):
        training_build(model)
    shutil.rmtree(rebuilt)
    with pytest.raises(QAnchorError, match="no longer exists"):
        training_build(model)
    (model / "data_manifest.json").write_text(json.dumps({**manifest, "built_dir": None}))
    with pytest.raises(QAnchorError, match="does not record its training build"):
        training_build(model)
