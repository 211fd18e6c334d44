"""Baselines that need no Q-Anchor training, computed from a built dataset directory.

- ``gbdt_features``: LightGBM per scenario on the activity aggregates plus the profile, the
  classic tabular model of risk and marketing teams (scores directly, no probe).
- ``text_mean_pool``: per user, the count-weighted mean event-encoder vector of the whole
  history (the snapshot's bag of distinct texts); ``text_mean_pool_recent``: the plain mean over
  the capped recent events the model's event tokens read. Both go through the same linear probe
  as our embeddings.

(``tfidf_lr``, the other whole-history baseline, lives in :mod:`qanchor.eval.bag_baselines`.)

Example::

    results = gbdt_features("data/built", seed=0)                      # scenario -> (y, scores)
    feats = text_mean_pool_features("data/built", encoder="default")  # index user_id
    recent = text_mean_pool_recent_features("data/built", per_source=32)
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.eval.probe import ProbeResults, check_labels, class_problem, train_test
from qanchor.model.profile import built_tables, tabular_frame

log = logging.getLogger(__name__)

# Modest fixed settings: a baseline that is tuned per scenario would need its own val protocol.
GBDT_PARAMS = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,  # without it LightGBM ignores subsample
    "colsample_bytree": 0.8,
    "deterministic": True,
    "force_row_wise": True,  # deterministic=True needs a fixed histogram layout to be exact
    # One thread: on tables of a few thousand users LightGBM's OpenMP threads gain nothing, and
    # on a busy 2-core machine two spinning threads made each fit ~20x slower (measured).
    "n_jobs": 1,
    "verbose": -1,
}


def tabular_features(built_dir: str | Path) -> pd.DataFrame:
    """Activity aggregates joined with the profile (if any), indexed by user_id.

    Profile columns get a ``profile__`` prefix (no clash with aggregate names); datetime columns
    are dropped and non-numeric ones made categorical; characters LightGBM rejects in feature
    names are replaced by ``_``.
    """
    profiles, aggregates = built_tables(built_dir)
    if profiles is not None:
        profiles = profiles.set_index("user_id").add_prefix("profile__").reset_index()
    X = tabular_frame(aggregates, profiles).set_index("user_id")
    X = X.drop(columns=[c for c in X.columns if pd.api.types.is_datetime64_any_dtype(X[c])])
    for col in X.columns:
        if pd.api.types.is_bool_dtype(X[col]) or not pd.api.types.is_numeric_dtype(X[col]):
            # Categories are fixed here, on all users, so train and test share one coding;
            # missing values stay missing (LightGBM routes them on their own branch).
            X[col] = X[col].astype("category")
    X.columns = [re.sub(r"[^0-9A-Za-z_]", "_", str(c)) for c in X.columns]
    return X


def gbdt_features(
    built_dir: str | Path, seed: int = 0, n_jobs: int | None = None,
    labels: pd.DataFrame | None = None,
) -> ProbeResults:  # fmt: skip
    """LightGBM per scenario on aggregates + profile: train on train+val, score test users.

    Args:
        built_dir: a built dataset directory (``qanchor data build``).
        seed: LightGBM seed (bagging and feature sampling); results are deterministic.
        n_jobs: LightGBM threads (default :data:`GBDT_PARAMS`' 1; more pays off on large data).
        labels: the label rows to fit and score (default: the build's labels.parquet).

    Returns:
        scenario -> (y_test, scores) as :class:`ProbeResults`; scenarios with one class in
        train or test are skipped and listed in ``skipped``.
    """
    from lightgbm import LGBMClassifier

    built = Path(built_dir)
    X = tabular_features(built)
    if labels is None:
        labels = pd.read_parquet(built / "labels.parquet")
    check_labels(labels)
    out = ProbeResults()
    for scenario in pd.unique(labels["scenario"]):
        train, test = train_test(labels[labels["scenario"] == scenario])
        if reason := class_problem(train, test):
            out.skip(scenario, reason)
            continue
        clf = LGBMClassifier(
            random_state=seed, **GBDT_PARAMS | ({"n_jobs": n_jobs} if n_jobs else {})
        )
        # reindex, not loc: a user without aggregates gets all-missing features, not a crash.
        clf.fit(X.reindex(train["user_id"]), train["label"].to_numpy())
        scores = clf.predict_proba(X.reindex(test["user_id"]))[:, 1]
        out[scenario] = (test["label"].to_numpy(), scores)
    return out


def _sources(built: Path) -> list[str]:
    """Event sources of the dataset: the manifest's list, else those seen in the snapshots."""
    manifest = built / "manifest.json"
    if manifest.is_file() and "sources" in (meta := json.loads(manifest.read_text())):
        return list(meta["sources"])
    seen = pd.read_parquet(built / "snapshots.parquet", columns=["event_source"])["event_source"]
    return sorted({s for lst in seen for s in lst})


def _event_vectors(
    texts: list[str], encoder: str, max_length: int, numbers: str = "keep"
) -> np.ndarray:
    """[texts, dim] frozen event-encoder vectors from the disk cache pretraining fills.

    Same fingerprint as ``ModelConfig(encoder=encoder, encoder_max_length=max_length)``, so
    texts encoded once are never encoded again; the encoder is loaded only if some text is
    missing from the cache (or, for no texts at all, to learn the width). ``numbers``: how the
    encoder reads numbers in texts, as the model's ``text_numbers``.
    """
    from qanchor.model.artifact import encoder_fingerprint
    from qanchor.model.backbones import cache_root, load_text_encoder
    from qanchor.model.config import ModelConfig
    from qanchor.model.vectors import VectorCache, encoder_texts

    fingerprint = encoder_fingerprint(ModelConfig(encoder=encoder, encoder_max_length=max_length))
    loaded = []  # the encoder, once loaded

    def text_encoder():
        if not loaded:
            loaded.append(load_text_encoder(encoder))
        return loaded[0]

    def encode(batch: list[str]) -> np.ndarray:
        return text_encoder().encode(batch, max_length=max_length).numpy()

    if not texts:
        return np.zeros((0, text_encoder().dim), np.float32)
    cache = VectorCache(cache_root() / "event_vectors", fingerprint)
    return cache.get(encoder_texts(texts, numbers), encode)


# Users per block of the text pools: their memory follows a block, not the build (pooling a
# whole 20,000-user build at once peaked at 2.7 GB, its whole-history bags exploded together).
POOL_BLOCK = 4096


def _snapshot_blocks(built: Path, columns: list[str] | None = None):
    """snapshots.parquet as frames of :data:`POOL_BLOCK` users (rows) each."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(built / "snapshots.parquet").iter_batches(
        POOL_BLOCK, columns=columns
    ):
        yield batch.to_pandas()


def _mean_pool(
    built: Path, blocks, name: str, encoder: str, max_length: int, numbers: str
) -> pd.DataFrame:
    """Per block of users, given as (user ids, weights [users, texts], the texts), the rows of
    the weights normalised to sum 1 times the texts' event-encoder vectors (:func:`_event_vectors`
    with ``encoder``, ``max_length``, ``numbers``); one frame.

    Users with no weight (no events) get zeros, and so do users of users.parquet that have no
    snapshot row; the frame is indexed by user_id with columns ``dim0..``.
    """
    import scipy.sparse as sp

    def vectors(texts: list[str]) -> np.ndarray:
        return _event_vectors(texts, encoder, max_length, numbers)

    frames = []
    for user_ids, weights, texts in blocks:
        totals = np.asarray(weights.sum(1), dtype=np.float64).ravel()
        inv = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        pooled = sp.diags(inv) @ sp.csr_matrix(weights, dtype=np.float64) @ vectors(texts)
        frames.append(pd.DataFrame(np.asarray(pooled, np.float32), index=pd.Index(user_ids)))
    dim = frames[0].shape[1] if frames else vectors([]).shape[1]
    frame = pd.concat(frames) if frames else pd.DataFrame(np.zeros((0, dim), np.float32))
    frame.index.name, frame.columns = "user_id", [f"dim{i}" for i in range(dim)]
    users = built / "users.parquet"
    if users.is_file():
        frame = frame.reindex(pd.read_parquet(users)["user_id"], fill_value=0.0)
    log.info("%s: %d users x %d dims", name, *frame.shape)
    return frame


def text_mean_pool_features(
    built_dir: str | Path, encoder: str = "default", max_length: int = 64, numbers: str = "keep"
) -> pd.DataFrame:
    """Per user, the count-weighted mean event-encoder vector over the WHOLE history.

    Reads the snapshot's bag (every history event as distinct texts with counts), so an
    event long past the model's per-source cap still counts, as it does for ``tfidf_lr``.
    Vectors come from the same cache as :func:`text_mean_pool_recent_features`.

    Returns:
        Frame indexed by user_id (every user of the built dataset), columns ``dim0..``; users
        without events get zeros.

    Raises:
        QAnchorError: if the build has no bag columns (built by an older qanchor).
    """
    import scipy.sparse as sp

    from qanchor.eval.bag_baselines import BAG_COLUMNS, bag_rows, require_bags

    built = Path(built_dir)
    require_bags(built)

    def blocks():
        for snaps in _snapshot_blocks(built, ["user_id", *BAG_COLUMNS]):
            user_ids, bags = bag_rows(snaps)
            # Vectors are per text (the cache key), so one text under two sources is one column.
            texts, cols = np.unique(bags["text"].to_numpy(dtype=str), return_inverse=True)
            rows = pd.Index(user_ids).get_indexer(bags["user_id"])
            counts = bags["count"].to_numpy(np.float64)
            shape = (len(user_ids), len(texts))
            yield user_ids, sp.csr_matrix((counts, (rows, cols)), shape=shape), texts.tolist()

    return _mean_pool(built, blocks(), "text_mean_pool", encoder, max_length, numbers)


def text_mean_pool_recent_features(
    built_dir: str | Path,
    encoder: str = "default",
    per_source: int = 32,
    caps: dict[str, int] | None = None,
    max_length: int = 64,
    numbers: str = "keep",
) -> pd.DataFrame:
    """Per user, the mean event-encoder vector over the snapshot's most recent events.

    The events are those the model's event tokens read with ``events_per_source=per_source``
    (the most recent ``per_source`` per source, ``caps`` overriding per source).

    Returns:
        Frame indexed by user_id (every user of the built dataset), columns ``dim0..``; users
        without events get zeros.
    """
    import scipy.sparse as sp

    from qanchor.model.data import UserTable

    built = Path(built_dir)
    sources = _sources(built)

    def blocks():
        for snaps in _snapshot_blocks(built):
            table = UserTable.from_snapshots(snaps, sources, per_source, caps, numbers=numbers)
            rows, cols = [], []
            for r, inp in enumerate(table.inputs):
                ids = [t for _, text_ids in inp.events for t in text_ids]
                rows += [r] * len(ids)
                cols += ids
            # One weight per event: a text seen twice among the recent events counts twice.
            shape = (len(table.inputs), len(table.texts))
            yield (
                table.user_ids,
                sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape),
                table.texts,
            )

    return _mean_pool(built, blocks(), "text_mean_pool_recent", encoder, max_length, numbers)
