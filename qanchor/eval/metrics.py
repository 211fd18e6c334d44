"""Binary-classification metrics of the evaluation: ROC AUC and KS (DESIGN.md section 4).

Example::

    auc, ks = auc_ks([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])   # (0.75, 0.5)
"""

from __future__ import annotations

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
