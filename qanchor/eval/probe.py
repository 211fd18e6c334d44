"""Linear probes: one logistic regression per scenario on frozen user features.

Every representation (our embeddings and the embedding baselines) is compared through the same
probe, so differences in AUC/KS come from the features, not from the classifier. Example::

    results = probe_scenarios(features, pd.read_parquet("data/built/labels.parquet"))
    y_test, scores = results["churn_next_month"]
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from qanchor.errors import QAnchorError

log = logging.getLogger(__name__)

Result = dict[str, tuple[np.ndarray, np.ndarray]]  # scenario -> (y_test, scores)

CS = (0.01, 0.1, 1.0)  # inverse regularisation strengths tried by the probe's internal CV
CV_FOLDS = 3
TRAIN_SPLITS = ("train", "val")
LABEL_COLUMNS = ("user_id", "scenario", "label", "split")


class ProbeResults(dict):
    """``scenario -> (y_test, scores)``, plus ``skipped``: scenario -> why it was not scored.

    A plain dict to every consumer; :func:`qanchor.eval.report.write_metrics` reads ``skipped``
    to list the reasons in ``eval_details.json``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: dict[str, str] = {}

    def skip(self, scenario: str, reason: str) -> None:
        log.warning("skipping scenario %s: %s", scenario, reason)
        self.skipped[scenario] = reason


def cv_logreg(y_train: np.ndarray, cs: tuple[float, ...], seed: int = 0, max_iter: int = 2000):
    """A class-balanced L2 logistic regression whose C is chosen by stratified CV (ROC AUC).

    Folds are ``min(CV_FOLDS, minority count)``; a single minority example cannot be
    cross-validated, so then the middle of ``cs`` is used without CV.
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    classes, counts = np.unique(y_train, return_counts=True)
    if len(classes) != 2:
        raise ValueError(f"a probe needs both classes in y_train; got {classes.tolist()}")
    common = {"solver": "lbfgs", "max_iter": max_iter, "class_weight": "balanced"}
    folds = int(min(CV_FOLDS, counts.min()))
    if folds < 2:
        return LogisticRegression(C=cs[len(cs) // 2], **common)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return LogisticRegressionCV(Cs=list(cs), l1_ratios=(0.0,), cv=cv, scoring="roc_auc",
                                use_legacy_attributes=False, **common)  # fmt: skip


def linear_probe(
    X_train: ArrayLike, y_train: ArrayLike, X_test: ArrayLike, seed: int = 0
) -> np.ndarray:
    """Test-set scores (positive-class probabilities) of a standardised logistic regression.

    ``StandardScaler`` then class-balanced L2 logistic regression (lbfgs); C is picked from
    :data:`CS` by stratified 3-fold CV on the training rows only, scored by ROC AUC.
    Deterministic for a given ``seed`` (it only seeds the fold shuffle).

    Raises:
        ValueError: if ``y_train`` does not hold both classes.
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    y = np.asarray(y_train).ravel()
    pipe = make_pipeline(StandardScaler(), cv_logreg(y, CS, seed))
    # One BLAS thread: probe matrices are small (thousands x hundreds), and on a busy 2-core
    # machine multi-threaded OpenBLAS spun so much that a fit took ~20x longer (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        pipe.fit(np.asarray(X_train, dtype=np.float64), y)
        return pipe.predict_proba(np.asarray(X_test, dtype=np.float64))[:, 1]


def check_labels(labels: pd.DataFrame) -> None:
    """Raise a QAnchorError naming the columns a labels frame lacks."""
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise QAnchorError(
            f"labels: missing column(s) {missing}; need {list(LABEL_COLUMNS)} "
            "(labels.parquet of a built dataset has them)"
        )


def sample_users(labels: pd.DataFrame, max_users: int, seed: int = 0) -> pd.DataFrame:
    """The label rows of at most ``max_users`` users, a seeded sample (0: all users).

    Evaluation embeds every evaluated user once per model; past a few thousand users the AUCs
    barely tighten while the cost keeps growing with the user base, so large builds are
    evaluated on a sample. Every model reads the same sample (the gate's rescoring too: same
    labels, same seed, same users), so their comparison stays paired. The sample is the
    ``max_users`` first users in :func:`ranked` order.
    """
    users = pd.unique(labels["user_id"])
    if not max_users or len(users) <= max_users:
        return labels
    keep = set(ranked(users, seed)[:max_users])
    return labels[labels["user_id"].isin(keep)].reset_index(drop=True)


def ranked(users, seed: int = 0) -> list[str]:  # noqa: ANN001 (any iterable of ids)
    """``users`` in a seeded pseudo-random order that does not depend on who else is listed.

    A user's place comes from a hash of the seed and its id alone, so the first n of a subset
    are the subset's members among the first m of the whole, for a large enough m: tuning's
    samples (training users, validation users) fall inside evaluation's sample of all users,
    and evaluation reads their vectors back instead of embedding them again.
    """
    import hashlib

    # Keyed apart from the build's split hash (qanchor.data.split.hash_unit: "{salt}:{id}"):
    # the same key would rank users by split, and a sample would take the test users first.
    def key(u: str) -> bytes:
        return hashlib.blake2b(f"sample:{seed}:{u}".encode(), digest_size=8).digest()

    return sorted(set(users), key=key)


def train_test(labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One scenario's label rows split into (train + val, test)."""
    is_train = labels["split"].isin(TRAIN_SPLITS).to_numpy()
    is_test = (labels["split"] == "test").to_numpy()
    return labels[is_train], labels[is_test]


def class_problem(train: pd.DataFrame, test: pd.DataFrame) -> str | None:
    """Why a scenario cannot be scored (one class in train or test), or None."""
    for name, part in (("train+val", train), ("test", test)):
        classes = sorted(part["label"].unique().tolist())
        if len(classes) < 2:
            return f"{name} has {len(part)} users and label values {classes} (need both classes)"
    return None


def _rows(feats: pd.DataFrame, users: pd.Series, scenario: str) -> np.ndarray:
    missing = users[~users.isin(feats.index)]
    if len(missing):
        raise QAnchorError(
            f"scenario {scenario}: {len(missing)} labelled users have no feature row, "
            f"e.g. {missing.head(3).tolist()}"
        )
    return feats.loc[users.to_numpy()].to_numpy(dtype=np.float64)


def probe_scenarios(
    features: pd.DataFrame | dict[str, pd.DataFrame],
    labels: pd.DataFrame,
    seed: int = 0,
) -> ProbeResults:
    """Probe every scenario of ``labels``; returns scenario -> (y_test, test scores).

    The probe trains on ``train`` and ``val`` users and scores ``test`` users. Val users join
    training because nothing here is tuned on val: the probe's only hyper-parameter (C) is
    chosen by its own CV inside the training rows, so holding val out would just waste labels.

    Args:
        features: one frame indexed by user_id shared by all scenarios (a static embedding),
            or scenario -> frame (query-conditioned embeddings: different features per
            scenario). Columns are feature dimensions.
        labels: rows ``user_id, scenario, label, split`` (a built dataset's labels.parquet).
        seed: seed of the probe's CV folds.

    Returns:
        A :class:`ProbeResults`; scenarios with one class in train or test, or without a
        feature frame, are left out, logged and listed in its ``skipped``.

    Raises:
        QAnchorError: if labels lack a column or a labelled user has no feature row.
    """
    check_labels(labels)
    out = ProbeResults()
    for scenario in pd.unique(labels["scenario"]):
        feats = features.get(scenario) if isinstance(features, dict) else features
        if feats is None:
            out.skip(scenario, "no features for this scenario")
            continue
        train, test = train_test(labels[labels["scenario"] == scenario])
        if reason := class_problem(train, test):
            out.skip(scenario, reason)
            continue
        X_train = _rows(feats, train["user_id"], scenario)
        X_test = _rows(feats, test["user_id"], scenario)
        scores = linear_probe(X_train, train["label"].to_numpy(), X_test, seed=seed)
        out[scenario] = (test["label"].to_numpy(), scores)
    return out


def scores_frame(results: dict[str, Result], labels: pd.DataFrame) -> pd.DataFrame:
    """Every model's test scores as rows (model, scenario, user_id, label, score).

    Saved by evaluation (``test_scores.parquet``) so that a later comparison on the same test
    users (the promotion gate) can pair its scores with these without embedding again. Rows of
    a scenario follow the test rows of ``labels``, the order every probe result has.
    """
    frames = []
    for model, per in results.items():
        for scenario, (y, scores) in per.items():
            _, test = train_test(labels[labels["scenario"] == scenario])
            frames.append(pd.DataFrame({"model": model, "scenario": scenario,
                                        "user_id": test["user_id"].to_numpy(),
                                        "label": np.asarray(y), "score": np.asarray(scores)}))  # fmt: skip
    cols = ["model", "scenario", "user_id", "label", "score"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def results_from_frame(frame: pd.DataFrame, model: str) -> dict[str, Result]:
    """One model's ``scenario -> (y_test, scores)`` back from :func:`scores_frame` rows."""
    rows = frame[frame["model"] == model]
    return {s: (g["label"].to_numpy(), g["score"].to_numpy()) for s, g in rows.groupby("scenario", sort=False)}  # fmt: skip
