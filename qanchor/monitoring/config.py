"""``DriftConfig``: what counts as drift, on how many rows, and how often an alert repeats.

Resolved like every stage config (defaults -> preset -> YAML -> flags); the job's thresholds file
is ``monitoring/drift.yaml``::

    cfg = resolve(DriftConfig, "small", "monitoring/drift.yaml")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from qanchor.config import option
from qanchor.errors import QAnchorError

EMBEDDING_METHODS = ("model", "distance", "mmd", "ratio")


@dataclass
class DriftConfig:
    """Settings of ``qanchor drift`` (input features, embeddings, scores, alert repetition)."""

    # --- input features (aggregates.parquet + profiles.parquet of the built datasets) ---------
    columns: list[str] = option(
        [], "feature columns to monitor; empty = every aggregate and profile column"
    )
    exclude_columns: list[str] = option([], "feature columns never monitored")
    num_method: str | None = option(
        None,
        "Evidently drift method of numeric features (ks, wasserstein, psi, ...); None = Evidently's "
        "choice by sample size (K-S p-value up to 1000 rows, normed Wasserstein distance above)",
    )
    num_threshold: float | None = option(
        None, "threshold of num_method (None: the method's default, 0.05 p-value or 0.1 distance)"
    )
    cat_method: str | None = option(
        None,
        "Evidently drift method of categorical features; None = chi-squared/Z-test or Jensen-Shannon by size",
    )
    cat_threshold: float | None = option(None, "threshold of cat_method (None: its default)")
    per_column_method: dict[str, str] = option({}, "drift method per column, e.g. credit_line=psi")
    per_column_threshold: dict[str, float] = option({}, "threshold per column, e.g. age=0.2")
    log_values: bool = option(
        True,
        "compare log1p of non-negative numeric features: counts and amounts are heavy-tailed, and a "
        "few very active users would otherwise dominate a distance normalised by the std",
    )
    drift_share: float = option(
        0.2, "share of drifted feature columns from which the input features count as drifted"
    )
    sample_size: int = option(20000, "feature rows per side (random sample; 0 = all rows)")
    # --- embeddings and scores (need --model) --------------------------------------------------
    scenarios: list[str] = option(
        [], "scenarios whose embeddings and scores are monitored; empty = all tuned"
    )
    embedding_sample: int = option(300, "users per side embedded for embedding and score drift")
    embedding_method: str = option(
        "model",
        "Evidently embedding drift method: model (classifier ROC AUC), distance, mmd or ratio",
    )
    embedding_threshold: float | None = option(
        None, "threshold of embedding_method (None: Evidently's default: 0.55 AUC, 0.2, 0.015, 0.2)"
    )
    embedding_bootstrap: bool | None = option(
        None,
        "judge the embedding statistic against a bootstrap null instead of the fixed threshold; "
        "None = when the reference sample is under 1000 rows (Evidently's rule)",
    )
    embedding_pca: int | None = option(None, "PCA components before the embedding test (None: all)")
    score_method: str | None = option(
        None, "Evidently drift method of the per-scenario scores (None: by size)"
    )
    score_threshold: float | None = option(None, "threshold of score_method (None: its default)")
    # --- alerting and sampling ----------------------------------------------------------------
    cooldown_hours: float = option(
        72.0, "re-send an alert for an unchanged drift only after this many hours"
    )
    seed: int = option(0, "seed of the row and user samples")

    PRESETS: ClassVar[dict[str, dict[str, object]]] = {
        "tiny": {"sample_size": 2000, "embedding_sample": 64},
        "small": {"sample_size": 20000, "embedding_sample": 300},
        "paper": {"sample_size": 200000, "embedding_sample": 2000},
    }  # fmt: skip

    def check(self) -> DriftConfig:
        """Reject settings that cannot work, naming every problem at once; returns self."""
        problems = []
        if not 0.0 < self.drift_share <= 1.0:
            problems.append(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.embedding_method not in EMBEDDING_METHODS:
            problems.append(
                f"embedding_method must be one of {EMBEDDING_METHODS}, got {self.embedding_method!r}"
            )
        if self.sample_size < 0 or self.embedding_sample < 2:
            problems.append("sample_size must be >= 0 and embedding_sample >= 2")
        if self.cooldown_hours < 0:
            problems.append(f"cooldown_hours must be >= 0, got {self.cooldown_hours}")
        if problems:
            raise QAnchorError("DriftConfig: " + "; ".join(problems))
        return self
