"""The linear probe learns signal, not noise, and uses the right users for fit and score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from qanchor.errors import QAnchorError
from qanchor.eval.probe import linear_probe, probe_scenarios


def test_linear_probe_separable_and_noise() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(900, 6))
    y = (X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=900) > 0).astype(int)
    scores = linear_probe(X[:600], y[:600], X[600:])
    assert scores.shape == (300,) and roc_auc_score(y[600:], scores) > 0.9
    noise = linear_probe(rng.normal(size=(600, 6)), y[:600], rng.normal(size=(300, 6)))
    assert abs(roc_auc_score(y[600:], noise) - 0.5) < 0.1  # AUC std here is ~0.03
    again = linear_probe(X[:600], y[:600], X[600:])
    np.testing.assert_array_equal(scores, again)  # deterministic


def test_linear_probe_needs_two_classes_and_handles_a_lone_positive() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 3))
    with pytest.raises(ValueError, match="both classes"):
        linear_probe(X, np.zeros(30), X)
    y = np.zeros(30, int)
    y[0] = 1  # too few positives for 3-fold CV: falls back to a fixed C
    assert linear_probe(X, y, X[:5]).shape == (5,)


def _labels(n: int, splits: list[str], scenarios: dict[str, np.ndarray]) -> pd.DataFrame:
    users = [f"u{i:04d}" for i in range(n)]
    frames = [
        pd.DataFrame({"user_id": users, "scenario": s, "label": y, "split": splits})
        for s, y in scenarios.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_probe_cannot_learn_a_feature_that_leaks_only_for_test_users() -> None:
    rng = np.random.default_rng(3)
    n = 600
    splits = ["test" if i % 4 == 0 else "train" for i in range(n)]
    y = rng.integers(0, 2, n)
    labels = _labels(n, splits, {"s": y})
    test = np.array(splits) == "test"
    # The label is visible in the feature for test users only; train users see noise.
    leak = np.where(test, y, rng.integers(0, 2, n)) + 0.01 * rng.normal(size=n)
    feats = pd.DataFrame({"leak": leak, "noise": rng.normal(size=n)}, index=labels["user_id"][:n])
    y_test, scores = probe_scenarios(feats, labels)["s"]
    np.testing.assert_array_equal(y_test, y[test])  # test users, in label order
    assert abs(roc_auc_score(y_test, scores) - 0.5) < 0.15


def test_val_users_join_training() -> None:
    rng = np.random.default_rng(4)
    n = 900
    splits = np.array(["train", "val", "val", "test"] * (n // 4) + ["train"] * (n % 4))
    y = rng.integers(0, 2, n)
    labels = _labels(n, list(splits), {"s": y})
    # Informative for val and test users, noise for train users: only a probe that trains on
    # val users can rank the test users.
    f = np.where(splits == "train", rng.integers(0, 2, n), y) + 0.1 * rng.normal(size=n)
    feats = pd.DataFrame({"f": f}, index=labels["user_id"][:n])
    y_test, scores = probe_scenarios(feats, labels)["s"]
    assert len(y_test) == (splits == "test").sum() and roc_auc_score(y_test, scores) > 0.75


def test_per_scenario_features_and_skips() -> None:
    rng = np.random.default_rng(5)
    n = 400
    splits = ["test" if i % 3 == 0 else "train" for i in range(n)]
    ya, yb = rng.integers(0, 2, n), rng.integers(0, 2, n)
    flat = np.zeros(n, int)
    labels = _labels(n, splits, {"a": ya, "b": yb, "flat": flat, "nofeat": ya})
    users = labels["user_id"][:n].to_numpy()
    fa = pd.DataFrame({"x": ya + 0.2 * rng.normal(size=n)}, index=users)
    fb = pd.DataFrame({"x": yb + 0.2 * rng.normal(size=n)}, index=users)
    res = probe_scenarios({"a": fa, "b": fb, "flat": fa}, labels)
    assert set(res) == {"a", "b"}
    assert roc_auc_score(*res["a"]) > 0.9 and roc_auc_score(*res["b"]) > 0.9
    assert "need both classes" in res.skipped["flat"] and "no features" in res.skipped["nofeat"]
    shared = probe_scenarios(fa, labels[labels["scenario"].isin(["a", "b"])])
    assert roc_auc_score(*shared["a"]) > 0.9 and abs(roc_auc_score(*shared["b"]) - 0.5) < 0.15


def test_labelled_users_without_features_are_an_error() -> None:
    labels = _labels(40, ["train", "test"] * 20, {"s": np.arange(40) // 2 % 2})
    feats = pd.DataFrame({"x": np.arange(39.0)}, index=labels["user_id"][:39])
    with pytest.raises(QAnchorError, match="1 labelled users have no feature row"):
        probe_scenarios(feats, labels)
    with pytest.raises(QAnchorError, match="missing column"):
        probe_scenarios(feats, labels.drop(columns=["split"]))
