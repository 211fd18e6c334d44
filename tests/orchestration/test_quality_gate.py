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


def scored(seed: int, strength: float, scenarios=("s1", "s2")) -> dict:
    """scenario -> (y, scores): the same 200 test users, scores informative by ``strength``."""
    import numpy as np

    out = {}
    for i, s in enumerate(scenarios):
        y = np.random.default_rng(100 + i).integers(0, 2, 200)
        noise = np.random.default_rng(seed + i).normal(size=200)
        out[s] = (y, strength * y + noise)
    return out


def test_compare_scores_both_models_on_the_same_users() -> None:
    from qanchor.orchestrate.gate import compare

    strong, weak = scored(1, 2.0), scored(2, 0.2)
    d = compare(weak, strong, tolerance=0.01)
    assert not d.passed and d.reason.startswith("rejected") and d.scenarios == ["s1", "s2"]
    assert d.candidate_auc < d.serving_auc - 0.2
    assert d.interval["high"] < 0 and d.interval["low"] <= d.interval["diff"] <= d.interval["high"]
    assert set(d.per_scenario["s1"]) == {"candidate", "serving"}
    up = compare(strong, weak, tolerance=0.01)
    assert up.passed and up.interval["low"] > 0 and "same 2 scenario(s)" in up.reason
    # Only shared scenarios count: a scenario the served model was not scored on is left out.
    extra = compare(strong | scored(3, 0.0, ("s3",)), weak, tolerance=0.01)
    assert extra.scenarios == ["s1", "s2"] and extra.candidate_auc == up.candidate_auc
    none = compare(strong, scored(3, 1.0, ("other",)))
    assert not none.passed and "no scenario scored for both" in none.reason


def test_a_served_model_of_another_schema_is_not_compared_with() -> None:
    from qanchor.orchestrate.gate import other_schema

    why = ["sources: ['app', 'bill'] != ['shop']"]
    d = other_schema(metrics(0.55), why, tolerance=0.01)
    assert d.passed and d.candidate_auc == 0.55 and d.serving_auc is None
    assert d.reason.startswith("passed as a first model on this data (mean AUC 0.5500)")
    assert why[0] in d.reason and d.served_schema_differences == why
    # Judged alone, the candidate still needs valid metrics.
    d = other_schema(metrics(None), why, tolerance=0.01)
    assert not d.passed and d.reason.startswith("rejected: candidate has no valid")
    assert "another dataset or feature schema" in d.reason
