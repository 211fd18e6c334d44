"""The quality gate: may a candidate model replace the one being served?

Rule: never promote a candidate whose mean AUC (``models.qanchor_tuned.mean_auc`` of its
metrics.json, DESIGN section 4) is below the serving model's by more than ``tolerance``. The
first model (nothing served yet) passes if its metrics are valid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

GATED_MODEL = "qanchor_tuned"


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and why."""

    passed: bool
    reason: str
    candidate_auc: float | None
    serving_auc: float | None
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_auc(metrics: dict[str, Any] | None, model: str = GATED_MODEL) -> float | None:
    """The gated model's mean AUC in a metrics.json dict, or None if absent or not a number."""
    try:
        value = float(metrics["models"][model]["mean_auc"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def gate(
    candidate_metrics: dict[str, Any],
    serving_metrics: dict[str, Any] | None,
    tolerance: float = 0.01,
) -> GateDecision:
    """Compare a candidate's metrics with the serving model's.

    Args:
        candidate_metrics: the candidate's metrics.json (DESIGN section 4).
        serving_metrics: the serving model's metrics.json, or None if nothing is served yet.
        tolerance: how far (in AUC) the candidate may fall below the serving model.

    Returns:
        A decision with a human-readable reason (shown in the Airflow log and notification).
    """
    cand = mean_auc(candidate_metrics)
    serving = mean_auc(serving_metrics) if serving_metrics is not None else None
    if cand is None:
        return GateDecision(False, f"candidate has no valid {GATED_MODEL} mean_auc", None, serving, tolerance)  # fmt: skip
    if serving_metrics is None:
        return GateDecision(True, f"first model: mean AUC {cand:.4f}, nothing served yet", cand, None, tolerance)  # fmt: skip
    if serving is None:
        # A serving model without usable metrics cannot be defended against: replace it.
        return GateDecision(True, f"serving model has no valid mean AUC; candidate {cand:.4f}", cand, None, tolerance)  # fmt: skip
    delta = cand - serving
    if delta < -tolerance:
        reason = f"rejected: mean AUC {cand:.4f} is {-delta:.4f} below serving {serving:.4f} (tolerance {tolerance})"
        return GateDecision(False, reason, cand, serving, tolerance)
    reason = f"passed: mean AUC {cand:.4f} vs serving {serving:.4f} (delta {delta:+.4f}, tolerance {tolerance})"
    return GateDecision(True, reason, cand, serving, tolerance)
