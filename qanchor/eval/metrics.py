"""Binary-classification metrics of the evaluation: ROC AUC and KS (DESIGN.md section 4).

Also the paired bootstrap of the difference between two models' mean AUC over test users.

Example::

    auc, ks = auc_ks([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])   # (0.75, 0.5)
    ci = paired_bootstrap(results["qanchor_tuned"], results["tfidf_lr"])  # ci["low"], ci["high"]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike


def _checked(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """1-D label and score arrays, or a ValueError that says what is wrong with them."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise ValueError(f"y_true has {len(y)} rows but scores has {len(s)}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores contain {int((~np.isfinite(s)).sum())} NaN/inf values")
    classes = np.unique(y)
    if len(classes) != 2:
        # roc_auc_score would only warn and return NaN for one class; a NaN in metrics.json is
        # worse than a clear stop, so callers skip such scenarios explicitly.
        raise ValueError(
            f"AUC/KS need both classes (exactly two labels) in y_true; got "
            f"{classes.tolist()} over {len(y)} rows"
        )
    return y, s


def auc_ks(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """ROC AUC and KS statistic (max of TPR - FPR over the ROC curve).

    Args:
        y_true: binary labels (the larger value is the positive class).
        scores: higher means more likely positive.

    Returns:
        ``(auc, ks)`` as Python floats.

    Raises:
        ValueError: if lengths differ, scores are not finite, or y_true holds one class only.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = _checked(y_true, scores)
    fpr, tpr, _ = roc_curve(y, s)
    return float(roc_auc_score(y, s)), float(np.max(tpr - fpr))


def roc_points(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve ``(fpr, tpr)``, with the same input checks as :func:`auc_ks`."""
    from sklearn.metrics import roc_curve

    y, s = _checked(y_true, scores)
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr


def _resample(rng: np.random.Generator, pos: np.ndarray, n_boot: int) -> tuple[np.ndarray, int]:
    """[n_boot, n] row indices drawn with replacement; draws with one class are redrawn.

    A resample without positives or without negatives has no AUC. It is redrawn rather than
    dropped, so every resample covers every scenario (the statistic stays a mean over the same
    scenarios); this conditions on both classes being present, which matters only for test
    sets with a handful of positives. Returns the indices and how many draws were redrawn.
    """
    n = len(pos)
    idx = rng.integers(0, n, (n_boot, n))
    redrawn = 0
    for _ in range(1000):
        n_pos = pos[idx].sum(1)
        bad = np.flatnonzero((n_pos == 0) | (n_pos == n))
        if not len(bad):
            return idx, redrawn
        redrawn += len(bad)
        idx[bad] = rng.integers(0, n, (len(bad), n))
    raise ValueError(f"could not draw two-class resamples of {n} rows with {pos.sum()} positives")


def resampled_auc(y_true: ArrayLike, scores: ArrayLike, idx: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample: row ``b`` of ``idx`` lists the rows (with repeats) it holds.

    Ties count one half, as in ``roc_auc_score``. A resample is a weighting of the rows by
    their multiplicity, so scores are sorted once and each AUC is a weighted Mann-Whitney
    count: positives' weight times the negative weight below (plus half the tied weight).
    """
    import scipy.sparse as sp

    y, s = _checked(y_true, scores)
    pos = y == y.max()
    values, level = np.unique(s, return_inverse=True)
    n, n_levels = len(s), len(values)
    # Row -> score level, split by class: weights @ onehot sums each level's weight.
    onehot_pos = sp.csr_matrix((pos.astype(float), (np.arange(n), level)), (n, n_levels))
    onehot_neg = sp.csr_matrix(((~pos).astype(float), (np.arange(n), level)), (n, n_levels))
    out = np.empty(len(idx))
    for start in range(0, len(idx), 256):  # bounded memory: [256, n] weights at a time
        block = idx[start : start + 256]
        flat = (block + n * np.arange(len(block))[:, None]).ravel()
        weights = np.bincount(flat, minlength=len(block) * n).reshape(len(block), n)
        p = np.asarray(weights @ onehot_pos)
        q = np.asarray(weights @ onehot_neg)
        below = np.cumsum(q, axis=1) - q
        num = (p * (below + 0.5 * q)).sum(1)
        out[start : start + len(block)] = num / (p.sum(1) * q.sum(1))
    return out


def paired_bootstrap(
    a: Mapping[str, tuple[ArrayLike, ArrayLike]],
    b: Mapping[str, tuple[ArrayLike, ArrayLike]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Bootstrap interval of mean-over-scenarios AUC(a) - AUC(b), resampling test users.

    Paired: per scenario, one resample of the test users (with replacement) is scored by both
    models, so what the two share (the same hard users) cancels out of the difference. Each
    scenario is resampled on its own; resamples that would hold one class only are redrawn
    (see :func:`_resample`). The interval is the percentile interval of the differences.

    Args:
        a, b: scenario -> (y_test, scores) of the two models, rows in the same user order
            (as every result of one evaluation is: the labels' test rows per scenario).
        n_boot: number of resamples.
        seed: seed of the resampling; the same seed gives the same interval.
        level: coverage of the interval.

    Returns:
        ``{"diff", "low", "high", "level", "n_boot", "seed", "scenarios", "redrawn"}``:
        the observed difference over the scenarios both scored, the interval, and how many
        one-class resamples were redrawn.

    Raises:
        ValueError: if no scenario is shared, or a shared scenario's labels differ between
            the two (the rows would not be paired).
    """
    scenarios = [s for s in a if s in b]
    if not scenarios:
        raise ValueError("the two models share no scored scenario")
    rng = np.random.default_rng(seed)
    observed, boot, redrawn = 0.0, np.zeros(n_boot), 0
    for s in scenarios:
        (ya, sa), (yb, sb) = a[s], b[s]
        if not np.array_equal(np.asarray(ya), np.asarray(yb)):
            raise ValueError(f"scenario {s}: the two models' test labels differ (not paired)")
        y = np.asarray(ya).ravel()
        idx, extra = _resample(rng, y == y.max(), n_boot)
        redrawn += extra
        observed += auc_ks(y, sa)[0] - auc_ks(y, sb)[0]
        boot += resampled_auc(y, sa, idx) - resampled_auc(y, sb, idx)
    boot /= len(scenarios)
    tail = (1.0 - level) / 2
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return {"diff": observed / len(scenarios), "low": float(low), "high": float(high),
            "level": level, "n_boot": n_boot, "seed": seed, "scenarios": scenarios,
            "redrawn": redrawn}  # fmt: skip
