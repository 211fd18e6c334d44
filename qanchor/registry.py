"""Model registry on the BentoML model store: versioned models, their metrics, the promoted one.

    from qanchor import registry
    tag = registry.register("runs/small/model", "runs/small/eval/metrics.json")
    registry.promote(tag)
    registry.load_promoted()          # -> local model directory for the service

A registered version is a BentoML model named ``qanchor`` whose version is the model's identity
(``qanchor.model.identity.model_id``: a content hash of the model directory, adapters included),
holding that directory under ``model/`` and the evaluation's ``metrics.json``; the metrics summary
and the data manifest summary are attached as metadata and labels (``bentoml models get qanchor:<version>`` shows them). Which version serves is a small
pointer file in the BentoML home (``$BENTOML_HOME/registry/<name>.json``, written atomically):
BentoML labels are fixed when a model is saved, and the pointer also keeps the promotion history.
The store location is BentoML's own (``BENTOML_HOME``, default ``~/bentoml``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qanchor.errors import QAnchorError
from qanchor.io import atomic_write_json

MODEL_NAME = "qanchor"
MODEL_SUBDIR = "model"  # the qanchor model directory inside a store version


@dataclass(frozen=True)
class ModelVersion:
    """One registered version as the registry reports it."""

    tag: str
    version: str
    created: str
    path: Path  # the qanchor model directory (with scenarios/) inside the store
    labels: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The metrics summary (DESIGN section 4 shape: ``models.<name>.mean_auc``), if any."""
        return self.metadata.get("metrics")


def _bentoml():
    # BentoML reports usage to its vendor by default; qanchor never sends anything anywhere.
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    import bentoml

    return bentoml


def bentoml_home() -> Path:
    """The BentoML home this process uses (the store lives in ``<home>/models``)."""
    _bentoml()
    from bentoml._internal.configuration.containers import BentoMLContainer

    # BentoML resolves BENTOML_HOME once per process; asking it keeps the pointer beside its store.
    return Path(BentoMLContainer.bentoml_home.get())


def _version(model) -> ModelVersion:
    info = model.info
    return ModelVersion(
        tag=str(model.tag),
        version=str(model.tag.version),
        created=info.creation_time.isoformat(),
        path=Path(model.path) / MODEL_SUBDIR,
        labels=dict(info.labels),
        metadata=dict(info.metadata),
    )


def metrics_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The part of a metrics.json worth attaching: mean AUC/KS per model and tuned AUC per scenario."""
    models = metrics.get("models", {})
    tuned = models.get("qanchor_tuned", {}).get("per_scenario", {})
    return {
        "dataset": metrics.get("dataset"),
        "scenarios": list(metrics.get("scenarios", [])),
        "models": {k: {"mean_auc": v.get("mean_auc"), "mean_ks": v.get("mean_ks")} for k, v in models.items()},
        "tuned_auc_per_scenario": {k: v.get("auc") for k, v in tuned.items()},
    }  # fmt: skip


def _manifest_summary(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "data_manifest.json"
    if not path.is_file():
        raise QAnchorError(f"{model_dir}: no data_manifest.json (not a pretrained qanchor model?)")
    m = json.loads(path.read_text())
    keep = ("content_hash", "input", "built_at", "cutoff", "sources", "rows", "users_per_split")
    return {k: m.get(k) for k in keep}


def register(
    model_dir: str | Path,
    metrics_path: str | Path | None = None,
    name: str = MODEL_NAME,
    labels: dict[str, str] | None = None,
) -> str:
    """Copy a model directory (and its adapters) into the store as a new version; returns its tag.

    The version is :func:`qanchor.model.identity.model_id` of the directory, so registering the
    same model again (a retried task) returns the existing tag, whose metrics are those first
    attached, instead of adding a version.

    Args:
        model_dir: a pretrained (and tuned) qanchor model directory.
        metrics_path: the evaluation's metrics.json, attached to the version.
        name: the store name (one per model family; ``qanchor`` by default).
        labels: extra labels (e.g. the Airflow run id).
    """
    from qanchor.model.identity import model_id

    model_dir = Path(model_dir)
    metrics = json.loads(Path(metrics_path).read_text()) if metrics_path else None
    # The version is the model's identity (a content hash of the model directory): the same
    # model registered twice (a retried task, a re-evaluation) is one version.
    version = model_id(model_dir)
    for v in versions(name):
        if v.version == version:
            return v.tag
    manifest = _manifest_summary(model_dir)
    auc = (metrics or {}).get("models", {}).get("qanchor_tuned", {}).get("mean_auc")
    all_labels = {"model_id": version, "dataset": str(manifest["content_hash"])[:12],
                  "mean_auc": f"{auc:.4f}" if auc is not None else "none", **(labels or {})}  # fmt: skip
    metadata = {
        "data": manifest,
        "scenarios": sorted(p.name for p in (model_dir / "scenarios").glob("*/")),
    }
    if metrics is not None:
        metadata["metrics"] = metrics_summary(metrics)
    with _bentoml().models.create(
        f"{name}:{version}", labels=all_labels, metadata=metadata
    ) as bento_model:
        shutil.copytree(model_dir, Path(bento_model.path) / MODEL_SUBDIR)
        if metrics_path:
            shutil.copy2(metrics_path, Path(bento_model.path) / "metrics.json")
    return str(bento_model.tag)


def versions(name: str = MODEL_NAME) -> list[ModelVersion]:
    """Every registered version of ``name``, newest first (none: an empty list)."""
    bentoml = _bentoml()
    try:
        models = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:
        return []
    return sorted((_version(m) for m in models), key=lambda v: v.created, reverse=True)


def get(tag: str) -> ModelVersion:
    """One version by tag (``qanchor:<version>``; ``qanchor:latest`` works too)."""
    bentoml = _bentoml()
    try:
        return _version(bentoml.models.get(tag))
    except bentoml.exceptions.NotFound as exc:
        raise QAnchorError(f"no registered model {tag!r}") from exc


def _pointer(name: str) -> Path:
    return bentoml_home() / "registry" / f"{name}.json"


def promote(tag: str, reason: str = "") -> ModelVersion:
    """Make ``tag`` the serving version of its name (the pointer keeps the history)."""
    version = get(tag)
    name = version.tag.split(":", 1)[0]
    path = _pointer(name)
    state = json.loads(path.read_text()) if path.is_file() else {"history": []}
    if state.get("tag") == version.tag:
        return version  # already serving: a retried task changes nothing
    now = datetime.now(UTC).isoformat(timespec="seconds")
    state["history"].append({"tag": version.tag, "promoted_at": now, "reason": reason})
    atomic_write_json(path, {**state, "tag": version.tag, "promoted_at": now, "reason": reason})
    return version


def promoted(name: str = MODEL_NAME) -> ModelVersion | None:
    """The serving version of ``name``, or None if nothing was promoted yet."""
    path = _pointer(name)
    if not path.is_file():
        return None
    return get(json.loads(path.read_text())["tag"])


def load_promoted(name: str = MODEL_NAME, tag: str | None = None) -> Path:
    """The local model directory of the promoted version (or of a pinned ``tag``).

    This is what the serving side loads: ``Embedder.from_dir(registry.load_promoted())``.
    """
    version = get(tag) if tag else promoted(name)
    if version is None:
        raise QAnchorError(f"no promoted {name!r} model yet: register and promote one first")
    if not (version.path / "config.json").is_file():
        raise QAnchorError(f"{version.tag}: store entry has no model directory at {version.path}")
    return version.path
