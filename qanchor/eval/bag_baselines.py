"""The ``tfidf_lr`` baseline: logistic regression on the TF-IDF bag of each user's whole history.

A sceptical data scientist's first model on a behaviour log, and on real logs the bar to beat:
which items a user touched, and how often, says much about them. The bag is the built snapshot's
``bag_source``/``bag_text``/``bag_count`` lists (every history event as distinct texts with
counts), vectorised by :class:`qanchor.data.bag.BagVectorizer`, the same view the model's own bag
channel reads. Per scenario the vectorizer is fitted on the training users only (train+val, the
users the probes train on), so test users' texts never shape the vocabulary or the idf.

Example::

    results = tfidf_lr("data/built", seed=0)       # scenario -> (y_test, scores)
    user_ids, bags = read_bags("data/built")       # long rows user_id, source, text, count
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.errors import QAnchorError
from qanchor.eval.probe import ProbeResults, check_labels, class_problem, cv_logreg, train_test

log = logging.getLogger(__name__)

BAG_COLUMNS = ("bag_source", "bag_text", "bag_count")
# Wider than the embedding probe's grid: sparse TF-IDF rows with tens of thousands of terms
# often want weak regularisation (C 10-100) on a few hundred users.
TFIDF_CS = (0.01, 0.1, 1.0, 10.0, 100.0)
TFIDF_MAX_ITER = 3000


def require_bags(built_dir: str | Path) -> Path:
    """The build's snapshots.parquet, checked to hold the whole-history bag columns.

    Raises:
        QAnchorError: if there is no snapshots.parquet, or the build predates the bag columns
            (it must be rebuilt).
    """
    import pyarrow.parquet as pq

    path = Path(built_dir) / "snapshots.parquet"
    if not path.is_file():
        raise QAnchorError(f"{built_dir}: no snapshots.parquet (not a built dataset directory)")
    missing = [c for c in BAG_COLUMNS if c not in pq.read_schema(path).names]
    if missing:
        raise QAnchorError(
            f"{path}: no whole-history bag columns {missing} (built by an older qanchor); "
            f"rebuild it with `qanchor data build --input <dataset> --out {built_dir}`"
        )
    return path


def read_bags(
    built_dir: str | Path, users: Collection[str] | None = None
) -> tuple[list[str], pd.DataFrame]:
    """The snapshot users and their whole-history bags as long rows.

    Args:
        built_dir: a built dataset directory.
        users: read only these users' rows (their row groups: memory follows them, not the
            build); None: every user.

    Returns:
        ``(user_ids, bags)``: the users read, in file order, and rows
        ``user_id, source, text, count`` (users with an empty bag have no rows).

    Raises:
        QAnchorError: see :func:`require_bags`.
    """
    from qanchor.data.user_rows import read_user_rows

    path, columns = require_bags(built_dir), ["user_id", *BAG_COLUMNS]
    if users is None:
        snaps = pd.read_parquet(path, columns=columns)
    else:
        snaps = read_user_rows(path, users, columns=columns)
    return bag_rows(snaps)


def bag_rows(snaps: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """:func:`read_bags`' result from snapshot rows holding ``user_id`` and the bag columns."""
    long = snaps.explode(list(BAG_COLUMNS)).dropna(subset=["bag_text"])
    bags = pd.DataFrame(
        {
            "user_id": long["user_id"].astype(str).to_numpy(),
            "source": long["bag_source"].astype(str).to_numpy(),
            "text": long["bag_text"].astype(str).to_numpy(),
            "count": long["bag_count"].to_numpy(np.float64),
        }
    )
    return snaps["user_id"].astype(str).tolist(), bags


def tfidf_scores(X_train, y_train: np.ndarray, X_test, seed: int = 0) -> np.ndarray:
    """Test scores of a class-balanced logistic regression on sparse TF-IDF rows.

    C is chosen from :data:`TFIDF_CS` by stratified CV on the training rows (ROC AUC). No
    scaler: the rows are already L2-normalised, and standardising would densify the matrix
    and blow rare terms up to the weight of common ones.
    """
    from threadpoolctl import threadpool_limits

    clf = cv_logreg(np.asarray(y_train).ravel(), TFIDF_CS, seed, max_iter=TFIDF_MAX_ITER)
    with threadpool_limits(limits=1, user_api="blas"):  # see probe.linear_probe
        clf.fit(X_train, np.asarray(y_train).ravel())
        return clf.predict_proba(X_test)[:, 1]


def tfidf_lr_probe(bags: pd.DataFrame, labels: pd.DataFrame, seed: int = 0) -> ProbeResults:
    """``tfidf_lr`` on in-memory bags: per scenario, fit the vectorizer and LR on train+val.

    Args:
        bags: long rows ``user_id, source, text, count`` (see :func:`read_bags`).
        labels: rows ``user_id, scenario, label, split`` (labels.parquet of a build).
        seed: seed of the CV folds.

    Returns:
        scenario -> (y_test, scores) as :class:`ProbeResults`; scenarios with one class in
        train or test are skipped with the reason. Labelled users without a bag get the
        all-zero row (the intercept alone scores them).
    """
    from qanchor.data.bag import BagVectorizer, count_matrix

    check_labels(labels)
    users = pd.Index(pd.unique(pd.concat([bags["user_id"], labels["user_id"]]).astype(str)))
    texts, counts = count_matrix(users.tolist(), bags)
    fitted: dict[frozenset, object] = {}  # training users -> TF-IDF of all users
    out = ProbeResults()
    for scenario in pd.unique(labels["scenario"]):
        train, test = train_test(labels[labels["scenario"] == scenario])
        if reason := class_problem(train, test):
            out.skip(scenario, reason)
            continue
        key = frozenset(train["user_id"].astype(str))
        if key not in fitted:  # scenarios usually share one split: fit the vocabulary once
            rows = users.get_indexer(sorted(key))
            vec = BagVectorizer.fit(texts, counts[rows], dim=0)
            fitted[key] = vec.tfidf(texts, counts)
            log.info("tfidf_lr: %d terms from %d training users", len(vec.terms), len(rows))
        x = fitted[key]
        tr = users.get_indexer(train["user_id"].astype(str))
        te = users.get_indexer(test["user_id"].astype(str))
        scores = tfidf_scores(x[tr], train["label"].to_numpy(), x[te], seed)
        out[scenario] = (test["label"].to_numpy(), scores)
    return out


def tfidf_lr(built_dir: str | Path, seed: int = 0) -> ProbeResults:
    """``tfidf_lr`` on a built dataset directory (snapshots.parquet bags, labels.parquet).

    Raises:
        QAnchorError: if the build has no bag columns or labels lack a column.
    """
    _, bags = read_bags(built_dir)
    return tfidf_lr_probe(bags, pd.read_parquet(Path(built_dir) / "labels.parquet"), seed)
