"""auc_ks against hand-computed values, scikit-learn and a brute-force KS; the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from qanchor.eval.metrics import auc_ks, paired_bootstrap, resampled_auc, roc_points


def test_auc_ks_on_a_hand_computed_example() -> None:
    # Positives score .35 and .8, negatives .1 and .4. Of the 4 (pos, neg) pairs, 3 are
    # ranked right (.35 < .4 is the miss): AUC = 3/4. Walking thresholds down the sorted
    # scores .8(+) .4(-) .35(+) .1(-): (TPR, FPR) = (.5, 0), (.5, .5), (1, .5), (1, 1),
    # so KS = max(TPR - FPR) = 0.5.
    auc, ks = auc_ks([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert (auc, ks) == pytest.approx((0.75, 0.5))
    assert isinstance(auc, float) and isinstance(ks, float)


def test_auc_ks_on_a_second_hand_example_with_a_tie() -> None:
    # y: 0 1 0 1 1, s: .2 .2 .5 .9 .7. Pairs (pos over neg): .2 vs .2 tie = 1/2, .2 vs .5 = 0,
    # .9 and .7 beat both negatives = 4 -> AUC = 4.5 / 6 = .75.
    # Thresholds .9: (1/3, 0); .7: (2/3, 0); .5: (2/3, 1/2); .2: (1, 1) -> KS = 2/3.
    assert auc_ks([0, 1, 0, 1, 1], [0.2, 0.2, 0.5, 0.9, 0.7]) == pytest.approx((0.75, 2 / 3))


def _brute_ks(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return max((pos >= t).mean() - (neg >= t).mean() for t in np.unique(s))


def test_auc_ks_match_sklearn_and_brute_force_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    for n in (20, 200, 1000):
        y = rng.integers(0, 2, n)
        s = rng.normal(size=n) + 0.8 * y
        auc, ks = auc_ks(y, s)
        assert auc == pytest.approx(roc_auc_score(y, s))
        assert ks == pytest.approx(_brute_ks(y, s))
        fpr, tpr = roc_points(y, s)
        assert np.max(tpr - fpr) == pytest.approx(ks)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auc_ks([1, 1, 1], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="NaN"):
        auc_ks([0, 1], [0.2, float("nan")])
    with pytest.raises(ValueError, match="3 rows but scores has 2"):
        auc_ks([0, 1, 1], [0.2, 0.3])


def _two_models(rng: np.random.Generator, n: int, scenarios: int, d_a: float, d_b: float):
    """Scores ``d * y + N(0, 1)``: the population AUC is Phi(d / sqrt(2))."""
    a, b = {}, {}
    for k in range(scenarios):
        y = (rng.random(n) < 0.3).astype(int)
        a[f"s{k}"] = (y, d_a * y + rng.normal(size=n))
        b[f"s{k}"] = (y, d_b * y + rng.normal(size=n))
    return a, b


def test_resampled_auc_matches_sklearn_on_every_resample() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    s = np.round(y + rng.normal(size=120), 1)  # rounded: many ties
    idx = rng.integers(0, 120, (300, 120))  # more than one 256-row block
    expected = [roc_auc_score(y[i], s[i]) for i in idx]
    np.testing.assert_allclose(resampled_auc(y, s, idx), expected, rtol=0, atol=1e-12)


def test_paired_bootstrap_covers_the_true_difference() -> None:
    from scipy.stats import norm

    truth = norm.cdf(1.0 / np.sqrt(2)) - norm.cdf(0.6 / np.sqrt(2))  # ~0.096
    rng = np.random.default_rng(1)
    covered = above_zero = 0
    for rep in range(40):
        a, b = _two_models(rng, n=250, scenarios=3, d_a=1.0, d_b=0.6)
        ci = paired_bootstrap(a, b, n_boot=400, seed=rep)
        assert ci["low"] <= ci["diff"] <= ci["high"]
        covered += ci["low"] <= truth <= ci["high"]
        above_zero += ci["low"] > 0
    # 95% intervals: 40 datasets should give about 38; fewer than 34 would be P < 0.01.
    assert covered >= 34
    # And informative, not just wide: for this gap at this size most exclude 0.
    assert above_zero >= 30


def test_paired_bootstrap_is_deterministic_for_a_seed() -> None:
    a, b = _two_models(np.random.default_rng(2), n=100, scenarios=2, d_a=1.0, d_b=0.8)
    first = paired_bootstrap(a, b, n_boot=300, seed=7)
    assert paired_bootstrap(a, b, n_boot=300, seed=7) == first
    other = paired_bootstrap(a, b, n_boot=300, seed=8)
    assert other["diff"] == first["diff"] and other["low"] != first["low"]
    assert first["scenarios"] == ["s0", "s1"] and first["n_boot"] == 300


def test_paired_bootstrap_redraws_one_class_resamples() -> None:
    y = np.array([1] + [0] * 11)  # one positive: ~35% of resamples miss it
    a = {"rare": (y, np.linspace(1, 0, 12))}
    b = {"rare": (y, np.linspace(0, 1, 12))}
    ci = paired_bootstrap(a, b, n_boot=200, seed=0)
    assert ci["redrawn"] > 20 and np.isfinite([ci["low"], ci["high"]]).all()
    assert ci["diff"] == 1.0  # AUC 1 vs 0 on the full test set, and on every redrawn resample
    assert ci["low"] == ci["high"] == 1.0


def test_paired_bootstrap_refuses_unpaired_rows() -> None:
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="not paired"):
        paired_bootstrap({"s": (y, y)}, {"s": (y[::-1], y)})
    with pytest.raises(ValueError, match="share no scored scenario"):
        paired_bootstrap({"s": (y, y)}, {"t": (y, y)})
