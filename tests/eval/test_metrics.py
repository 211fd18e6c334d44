"""auc_ks against hand-computed values, scikit-learn and a brute-force KS."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from qanchor.eval.metrics import auc_ks, roc_points


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
