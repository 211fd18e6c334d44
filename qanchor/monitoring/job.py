"""One drift run: compare a current build with the reference, write reports and ``summary.json``.

    qanchor drift --reference data/built-train --current data/built-latest --out runs/drift/2026-04-01

The output directory (written atomically: a rerun replaces it whole) holds

    report.html      index: what drifted, by how much, thresholds, links to the reports below
    features.html    Evidently data drift report of the input features
    scores.html      Evidently drift report of the per-scenario scores (with --model)
    summary.json     the machine-readable result (schema below)

``summary.json``: ``drift_detected``, ``drifted_items`` (``feature:<col>``, ``embedding:<scenario>``,
``score:<scenario>``), ``signature`` (hash of the items, for alert de-duplication),
``features`` / ``embeddings`` / ``scores`` (per item: drifted, score, method, threshold, how
much it moved), ``reference`` / ``current`` (paths, snapshot times), ``thresholds`` (the
``DriftConfig``), ``reports`` (paths) and ``workspace`` (Evidently project and run ids).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qanchor.config import to_dict
from qanchor.io import atomic_dir
from qanchor.model.identity import model_id
from qanchor.monitoring.config import DriftConfig

log = logging.getLogger(__name__)
SUMMARY = "summary.json"


def run_drift(
    reference: str | Path,
    current: str | Path,
    out_dir: str | Path,
    cfg: DriftConfig,
    model_dir: str | Path | None = None,
    workspace: str | Path | None = None,
) -> dict[str, Any]:
    """Compute input, embedding and score drift; write the run's directory; returns the summary.

    Args:
        reference: Built dataset of the training snapshot window.
        current: Built dataset of the latest snapshots.
        out_dir: Directory of this run's reports and ``summary.json`` (replaced atomically).
        cfg: Thresholds and sample sizes.
        model_dir: Model whose embeddings and scenario scores to monitor (None: features only).
        workspace: Local Evidently workspace to add the runs to (None: none).
    """
    from qanchor.monitoring import features as F
    from qanchor.monitoring import reports

    cfg.check()
    t0 = time.perf_counter()
    ref, cur = F.load_features(reference), F.load_features(current)
    snaps, parts = {}, {"embeddings": None, "scores": None}
    snaps["features"], parts["features"] = F.feature_drift(ref, cur, cfg)
    if model_dir is not None:
        parts["embeddings"], parts["scores"], snaps["scores"] = _model_drift(
            model_dir, reference, current, cfg
        )
    snaps = {k: v for k, v in snaps.items() if v is not None}  # no tuned scenario: no scores report
    out_dir = Path(out_dir)
    summary = _summary(parts, cfg, out_dir, list(snaps))
    for side, path, frame in (("reference", reference, ref), ("current", current, cur)):
        summary[side] = {
            "path": str(path),
            "snapshot_ts": F.snapshot_time(frame),
            "users": len(frame),
        }
    summary["model"] = None if model_dir is None else str(model_dir)
    # The identity the service, the registry and the embedding outputs name the model by.
    summary["model_version"] = None if model_dir is None else model_id(model_dir)
    if workspace:
        stamp = summary["created_at"]
        summary["workspace"] = reports.add_to_workspace(
            workspace, {f"{k} {stamp}": v for k, v in snaps.items()}
        )
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    _write(out_dir, summary, snaps)
    log.info("drift run in %s: %s", out_dir, summary["drifted_items"] or "no drift")
    return summary


def _summary(
    parts: dict[str, Any], cfg: DriftConfig, out_dir: Path, report_names: list[str]
) -> dict[str, Any]:
    """The summary's verdict, per-part results, thresholds and report paths."""
    items = drifted_items(parts["features"], parts["embeddings"], parts["scores"])
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "drift_detected": bool(items),
        "drifted_items": items,
        "signature": signature(items),
        **parts,
        "thresholds": to_dict(cfg),
        "reports": {"index": str(out_dir / "report.html")}
        | {name: str(out_dir / f"{name}.html") for name in report_names},
        "workspace": None,
    }


SERVED = "served"  # in place of a path: the promoted model, or the build it was trained on


def training_build(model_dir: str | Path) -> Path:
    """The built dataset a model was trained on (its ``data_manifest.json`` records it), checked
    against the content hash the model recorded.

    Raises:
        QAnchorError: the model does not record it, or the directory is gone or was rebuilt.
    """
    from qanchor.errors import QAnchorError

    manifest = json.loads((Path(model_dir) / "data_manifest.json").read_text())
    built = manifest.get("built_dir")
    if not built:
        raise QAnchorError(f"{model_dir}: the model does not record its training build (trained "
                           "before qanchor recorded it); pass the reference build explicitly")  # fmt: skip
    found = Path(built) / "manifest.json"
    if not found.is_file():
        raise QAnchorError(f"{model_dir}: its training build {built} no longer exists")
    if json.loads(found.read_text()).get("content_hash") != manifest.get("content_hash"):
        raise QAnchorError(f"{built} was rebuilt since {model_dir} was trained on it: pass the "
                           "reference build explicitly")  # fmt: skip
    return Path(built)


def resolve_served(
    reference: str | Path, model_dir: str | Path | None, name: str = "qanchor"
) -> tuple[Path, Path | None]:
    """Replace ``served`` in ``reference`` / ``model_dir`` by the promoted model's training
    build / directory (from the registry); other values are returned as given."""
    if SERVED not in (str(reference), str(model_dir)):
        return Path(reference), Path(model_dir) if model_dir else None
    from qanchor import registry

    served = registry.load_promoted(name)
    model = served if str(model_dir) == SERVED else (Path(model_dir) if model_dir else None)
    ref = training_build(served) if str(reference) == SERVED else Path(reference)
    return ref, model


def run_configured(
    reference: str | Path,
    current: str | Path,
    out_dir: str | Path,
    preset: str | None = None,
    config: str | Path | None = None,
    model_dir: str | Path | None = None,
    workspace: str | Path | None = None,
) -> dict[str, Any]:
    """``run_drift`` with the config resolved from a preset and a thresholds YAML (the DAG's call).

    ``reference`` and ``model_dir`` may be ``served``: see :func:`resolve_served`.
    """
    from qanchor.config import resolve

    cfg = resolve(DriftConfig, preset or None, config or None)
    reference, model = resolve_served(reference, model_dir or None)
    return run_drift(reference, current, out_dir, cfg, model, workspace or None)


def _model_drift(
    model_dir: str | Path, reference: str | Path, current: str | Path, cfg: DriftConfig
) -> tuple[dict, dict, Any]:
    from qanchor.monitoring import embeddings as E

    names, protos = E.model_scenarios(model_dir, cfg.scenarios)
    ref_vecs, cur_vecs = E.embed_samples(model_dir, [reference, current], names, cfg)
    emb = E.embedding_drift(ref_vecs, cur_vecs, names, cfg)
    snap, score = E.score_drift(
        E.scores(ref_vecs, names, protos), E.scores(cur_vecs, names, protos), cfg
    )
    return emb, score, snap


def drifted_items(features: dict, embeddings: dict | None, scores: dict | None) -> list[str]:
    """What an alert is about: drifted features (only once the share counts as drift), embeddings, scores."""
    items = []
    if features["drifted"]:
        items += [f"feature:{c}" for c, v in features["columns"].items() if v["drifted"]]
    for kind, part in (("embedding", embeddings), ("score", scores)):
        if part:
            items += [f"{kind}:{s}" for s, v in part["scenarios"].items() if v["drifted"]]
    return sorted(items)


def signature(items: list[str]) -> str | None:
    """A short stable hash of a set of drifted items (None for no drift)."""
    if not items:
        return None
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()[:16]


def _write(out_dir: Path, summary: dict, snaps: dict[str, Any]) -> None:
    from qanchor.monitoring import reports
    from qanchor.monitoring.message import render_html

    with atomic_dir(out_dir) as tmp:
        for name, snap in snaps.items():
            reports.save_html(snap, tmp / f"{name}.html")
        (tmp / "report.html").write_text(
            render_html(summary, title="qanchor drift report"), encoding="utf-8"
        )
        (tmp / SUMMARY).write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8"
        )


def read_summary(path: str | Path) -> dict[str, Any]:
    """A run's summary, from its ``summary.json`` or the run directory."""
    path = Path(path)
    return json.loads((path / SUMMARY if path.is_dir() else path).read_text(encoding="utf-8"))
