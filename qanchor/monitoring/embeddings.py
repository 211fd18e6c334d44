"""Embedding and score drift: what the model makes of a sample of reference and current users.

Both samples are embedded by the same model, once per monitored scenario (its tuned soft prompt
when it has one). Per scenario:

* **embedding drift**: an Evidently embedding drift method (default ``model``: a classifier
  tries to tell reference from current vectors; ROC AUC above the threshold, or above a bootstrap
  of random AUCs on small samples, is drift) on the [users, dim] vectors;
* **score drift**: the scenario's score of each user, ``cos(u, positive prototype) -
  cos(u, negative prototype)``, i.e. the tuned scenario classifier's logit (times its
  temperature); its distribution is compared by Evidently's ``ValueDrift`` like a feature.
  Scenarios without a tuned adapter (no prototypes) have no score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qanchor.errors import QAnchorError
from qanchor.model.profile import built_tables, tabular_frame
from qanchor.monitoring.config import DriftConfig


def sample_users(
    built_dir: str | Path, n: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Snapshots (and the tabular source: profile + aggregates) of up to ``n`` users drawn at random from a built dataset."""
    built_dir = Path(built_dir)
    snaps = pd.read_parquet(built_dir / "snapshots.parquet")
    if len(snaps) > n:
        snaps = snaps.sample(n, random_state=seed)
    return snaps.reset_index(drop=True), tabular_frame(*built_tables(built_dir))


def model_scenarios(
    model_dir: str | Path, wanted: list[str]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """The scenarios to monitor and the [K, d] prototypes of those that are tuned."""
    from qanchor.tune.adapters import load_adapters

    protos = {a.name: a.prototypes.float().numpy() for a in load_adapters(model_dir)}
    names = wanted or sorted(protos)
    if not names:
        raise QAnchorError(
            f"{model_dir}: no tuned scenario; name the scenarios to monitor (DriftConfig.scenarios)"
        )
    return names, {s: protos[s] for s in names if s in protos}


def embed_samples(
    model_dir: str | Path, built_dirs: list[str | Path], names: list[str], cfg: DriftConfig
) -> list[np.ndarray]:
    """[users, scenarios, d] embeddings of a user sample of each built dataset (one model load)."""
    from qanchor.infer.engine import Embedder

    emb = Embedder.from_dir(model_dir)
    out = []
    for built in built_dirs:
        snaps, profiles = sample_users(built, cfg.embedding_sample, cfg.seed)
        # Same user ids in both datasets are different inputs: the prefix cache keys on the
        # inputs' hash, so the second load never reuses the first one's states.
        emb.load_users(snaps, profiles)
        out.append(emb.embed(snaps["user_id"].astype(str).tolist(), names))
    return out


def scores(
    vectors: np.ndarray, names: list[str], prototypes: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Per user and tuned scenario: cos(u, positive prototype) - cos(u, negative prototype)."""
    cols = {}
    for j, name in enumerate(names):
        if name in prototypes:
            p = prototypes[name]
            # Embeddings and prototypes are L2-normalised: dot products are cosines.
            cols[name] = vectors[:, j] @ p[1] - vectors[:, j] @ p[0]
    return pd.DataFrame(cols)


def drift_method(cfg: DriftConfig, reference_rows: int) -> Any:
    """The Evidently embedding drift method that ``cfg`` names, with its threshold."""
    from evidently.metrics import embeddings as E

    cls = {"model": E.ModelDriftMethod, "distance": E.DistanceDriftMethod,
           "mmd": E.MMDDriftMethod, "ratio": E.RatioDriftMethod}[cfg.embedding_method]  # fmt: skip
    kwargs: dict[str, Any] = {"pca_components": cfg.embedding_pca}
    if cfg.embedding_threshold is not None:
        kwargs["threshold"] = cfg.embedding_threshold
    if cls is not E.RatioDriftMethod:
        boot = cfg.embedding_bootstrap
        kwargs["bootstrap"] = reference_rows < 1000 if boot is None else boot
        # Drift = above the null's 95th percentile. Evidently's MMD default (0.05) compares with
        # the 5th percentile, which nearly any sample exceeds.
        kwargs["quantile_probability"] = 0.95
    return cls(**kwargs)


def embedding_drift(
    reference: np.ndarray, current: np.ndarray, names: list[str], cfg: DriftConfig
) -> dict:
    """Per scenario: Evidently's embedding drift statistic and decision on the two samples.

    The method is called directly rather than through the ``EmbeddingsDrift`` metric: the metric
    also fits a t-SNE for its plot, which takes ~20 s per scenario on 2 CPU cores.
    """
    method = drift_method(cfg, len(reference))
    out = {}
    for j, name in enumerate(names):
        ref = pd.DataFrame(reference[:, j]).add_prefix("d")
        cur = pd.DataFrame(current[:, j]).add_prefix("d")
        score, drifted, kind = method(cur, ref)
        boot = bool(getattr(method, "bootstrap", False))
        # With a bootstrap the bar is a quantile of the null, not the fixed threshold.
        out[name] = {"drifted": bool(drifted), "score": float(score), "method": kind,
                     "threshold": None if boot else method.threshold, "bootstrap": boot}  # fmt: skip
    return {
        "drifted": any(v["drifted"] for v in out.values()),
        "rows": {"reference": len(reference), "current": len(current)},
        "scenarios": out,
    }


def score_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig
) -> tuple[Any, dict]:
    """Per scenario: Evidently ``ValueDrift`` of the score distribution (one report for all)."""
    from evidently.presets import DataDriftPreset

    from qanchor.monitoring import reports

    names = list(reference.columns)
    if not names:
        return None, {"drifted": False, "scenarios": {}, "note": "no tuned scenario: no scores"}
    preset = DataDriftPreset(
        columns=names, num_method=cfg.score_method, num_threshold=cfg.score_threshold
    )
    snap = reports.run_report([preset], reference, current, names, tags=["model"])
    per = reports.column_drifts(snap)
    for name, entry in per.items():
        entry.update(
            reference_mean=float(reference[name].mean()), current_mean=float(current[name].mean())
        )
    return snap, {"drifted": any(v["drifted"] for v in per.values()), "scenarios": per}
