"""The quality gate's rule on metrics.json dicts."""

from __future__ import annotations

import pytest

from qanchor.orchestrate.gate import gate, mean_auc


def metrics(auc: float | None) -> dict:
    models = (
        {}
        if auc is None
        else {"qanchor_tuned": {"mean_auc": auc, "mean_ks": 0.3, "per_scenario": {}}}
    )
    return {"dataset": "d", "scenarios": ["s"], "models": models}


def test_first_model_passes() -> None:
    d = gate(metrics(0.61), None, tolerance=0.01)
    assert d.passed and d.serving_auc is None and "first model" in d.reason


@pytest.mark.parametrize(
    ("candidate", "serving", "passed"),
    [
        (0.80, 0.70, True),
        (0.695, 0.70, True),
        (0.70, 0.70, True),
        (0.689, 0.70, False),
        (0.50, 0.70, False),
    ],
)
def test_candidate_may_fall_at_most_tolerance_below_serving(candidate, serving, passed) -> None:
    d = gate(metrics(candidate), metrics(serving), tolerance=0.01)
    assert d.passed is passed
    assert d.candidate_auc == candidate and d.serving_auc == serving
    assert ("rejected" in d.reason) is (not passed)


def test_candidate_without_valid_metrics_is_rejected() -> None:
    assert not gate(metrics(None), metrics(0.7)).passed
    assert not gate(metrics(float("nan")), None).passed
    assert mean_auc({"models": {"qanchor_tuned": {"mean_auc": "x"}}}) is None


def test_serving_model_without_metrics_does_not_block() -> None:
    d = gate(metrics(0.6), metrics(None))
    assert d.passed and d.serving_auc is None
