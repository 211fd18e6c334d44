"""Baselines that need no Q-Anchor training, computed from a built dataset directory.

- ``gbdt_features``: LightGBM per scenario on the activity aggregates plus the profile, the
  classic tabular model of risk and marketing teams (scores directly, no probe).
- ``text_mean_pool``: per user, the mean event-encoder vector of the snapshot's events; the
  features then go through the same linear probe as our embeddings.

Example::

    results = gbdt_features("data/built", seed=0)                      # scenario -> (y, scores)
    feats = text_mean_pool_features("data/built", encoder="default")  # index user_id
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.eval.probe import ProbeResults, check_labels, class_problem, train_test

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


def _frame(path: Path, prefix: str = "") -> pd.DataFrame:
    """A per-user table indexed by user_id: datetimes dropped, non-numeric columns categorical."""
    df = pd.read_parquet(path).set_index("user_id")
    df = df.drop(columns=[c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])])
    for col in df.columns:
        if pd.api.types.is_bool_dtype(df[col]) or not pd.api.types.is_numeric_dtype(df[col]):
            # Categories are fixed here, on all users, so train and test share one coding;
            # missing values stay missing (LightGBM routes them on their own branch).
            df[col] = df[col].astype("category")
    return df.add_prefix(prefix)


def tabular_features(built_dir: str | Path) -> pd.DataFrame:
    """Activity aggregates joined with the profile (if any), indexed by user_id.

    Profile columns get a ``profile__`` prefix (no clash with aggregate names); characters
    LightGBM rejects in feature names are replaced by ``_``.
    """
    built = Path(built_dir)
    X = _frame(built / "aggregates.parquet")
    if (built / "profiles.parquet").is_file():
        X = X.join(_frame(built / "profiles.parquet", "profile__"), how="left")
    X.columns = [re.sub(r"[^0-9A-Za-z_]", "_", str(c)) for c in X.columns]
    return X


def gbdt_features(built_dir: str | Path, seed: int = 0, n_jobs: int | None = None) -> ProbeResults:
    """LightGBM per scenario on aggregates + profile: train on train+val, score test users.

    Args:
        built_dir: a built dataset directory (``qanchor data build``).
        seed: LightGBM seed (bagging and feature sampling); results are deterministic.
        n_jobs: LightGBM threads (default :data:`GBDT_PARAMS`' 1; more pays off on large data).

    Returns:
        scenario -> (y_test, scores) as :class:`ProbeResults`; scenarios with one class in
        train or test are skipped and listed in ``skipped``.
    """
    from lightgbm import LGBMClassifier

    built = Path(built_dir)
    X = tabular_features(built)
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


def _sources(built: Path, snaps: pd.DataFrame) -> list[str]:
    """Event sources of the dataset: the manifest's list, else those seen in the snapshots."""
    manifest = built / "manifest.json"
    if manifest.is_file() and "sources" in (meta := json.loads(manifest.read_text())):
        return list(meta["sources"])
    return sorted({s for lst in snaps["event_source"] for s in lst})


def text_mean_pool_features(
    built_dir: str | Path,
    encoder: str = "default",
    per_source: int = 32,
    caps: dict[str, int] | None = None,
    max_length: int = 64,
) -> pd.DataFrame:
    """Per user, the mean event-encoder vector over the snapshot's most recent events.

    The events are those a model with ``events_per_source=per_source`` reads (the most recent
    ``per_source`` per source, ``caps`` overriding per source). Vectors come from the disk
    cache pretraining fills (same fingerprint as ``ModelConfig(encoder=encoder,
    encoder_max_length=max_length)``), so texts encoded once are never encoded again; the
    encoder is loaded only if some text is missing from the cache.

    Returns:
        Frame indexed by user_id (every user of the built dataset), columns ``dim0..``; users
        without events get zeros.
    """
    import scipy.sparse as sp

    from qanchor.model.artifact import encoder_fingerprint
    from qanchor.model.backbones import cache_root, load_text_encoder
    from qanchor.model.config import ModelConfig
    from qanchor.model.data import UserTable
    from qanchor.model.vectors import VectorCache

    built = Path(built_dir)
    snaps = pd.read_parquet(built / "snapshots.parquet")
    table = UserTable.from_snapshots(snaps, _sources(built, snaps), per_source, caps)
    fingerprint = encoder_fingerprint(ModelConfig(encoder=encoder, encoder_max_length=max_length))
    loaded = []  # the encoder, once loaded

    def text_encoder():
        if not loaded:
            loaded.append(load_text_encoder(encoder))
        return loaded[0]

    def encode(texts: list[str]) -> np.ndarray:
        return text_encoder().encode(texts, max_length=max_length).numpy()

    vecs = VectorCache(cache_root() / "event_vectors", fingerprint).get(table.texts, encode)
    dim = vecs.shape[1] if len(table.texts) else text_encoder().dim
    # Sparse [users, texts] matrix of 1/n_events weights: the mean pool is one product.
    rows, cols = [], []
    for r, inp in enumerate(table.inputs):
        ids = [t for _, text_ids in inp.events for t in text_ids]
        rows += [r] * len(ids)
        cols += ids
    counts = np.bincount(rows, minlength=len(table.inputs)).astype(np.float64)
    weights = 1.0 / counts[rows] if rows else []
    pool = sp.csr_matrix((weights, (rows, cols)), shape=(len(table.inputs), len(table.texts)))
    pooled = pool @ vecs if len(table.texts) else np.zeros((len(table.inputs), dim))
    index = pd.Index(table.user_ids, name="user_id")
    frame = pd.DataFrame(np.asarray(pooled, np.float32), index=index)
    frame.columns = [f"dim{i}" for i in range(dim)]
    users = built / "users.parquet"
    if users.is_file():  # users whose snapshot row is missing: no events, zeros
        frame = frame.reindex(pd.read_parquet(users)["user_id"], fill_value=0.0)
    log.info("text_mean_pool: %d users x %d dims from %d texts", *frame.shape, len(table.texts))
    return frame
