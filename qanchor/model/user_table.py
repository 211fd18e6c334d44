"""Users' prefix inputs (:class:`UserTable`) from built snapshot rows.

Built block by block of users (:data:`BLOCK_USERS`): exploding every user's events and bag
rows into long pandas frames at once took ~10 GB at 80,000 synthetic users (tuning's train and
val users of a 100,000-user build), while the finished table holds a fraction of that. Each
block is exploded, interned and turned into inputs, then its texts are merged into one table.

Example::

    table = UserTable.from_snapshots(snapshots, ["bill", "search"], per_source=8)
    table.inputs[table.index()["u00042"]].events   # [(source index, [text ids])]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from qanchor.data.bag import BagVectorizer, count_matrix
from qanchor.data.snapshots import keep_recent
from qanchor.model.layout import UserInput, no_bag
from qanchor.model.profile import ProfileFeaturizer

BLOCK_USERS = 4096  # users exploded at a time; the table is the same for any block size


@dataclass
class UserTable:
    """Prefix inputs of a set of users, with event texts interned into ``texts``.

    Attributes:
        user_ids: user ids in row order.
        texts: the distinct event texts; events refer to them by index.
        inputs: one :class:`UserInput` per user (most recent events per source, oldest first).
    """

    user_ids: list[str]
    texts: list[str]
    inputs: list[UserInput]

    def index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @classmethod
    def from_snapshots(
        cls,
        snapshots: pd.DataFrame,
        sources: list[str],
        per_source: int,
        caps: dict[str, int] | None = None,
        profiles: pd.DataFrame | None = None,
        featurizer: ProfileFeaturizer | None = None,
        whole_history: bool = False,
        bag_vectorizer: BagVectorizer | None = None,
        numbers: str = "keep",
        block: int = BLOCK_USERS,
    ) -> UserTable:
        """Build from snapshot rows (list columns event_source/event_text, ordered by time).

        Sources the model does not know are ignored (a model reads what it was trained on).
        ``whole_history`` and ``bag_vectorizer`` read the ``bag_*`` list columns (a build's
        whole-history bag) into ``UserInput.bag`` and ``UserInput.bag_vec``. ``texts`` are
        what the event encoder reads (``numbers``: ``ModelConfig.text_numbers``): events whose
        texts differ only in rounded numbers share one text and one vector. ``block`` users are
        read at a time (the result does not depend on it).
        """
        args = (sources, per_source, caps or {}, profiles, featurizer, whole_history,
                bag_vectorizer, numbers)  # fmt: skip
        return _merged([_block(b, *args) for b in _blocks(snapshots, block)])


def _block(
    snapshots: pd.DataFrame, sources: list[str], per_source: int, caps: dict[str, int],
    profiles: pd.DataFrame | None, featurizer: ProfileFeaturizer | None, whole_history: bool,
    bag_vectorizer: BagVectorizer | None, numbers: str,
) -> UserTable:  # fmt: skip
    """The table of one block of users (:meth:`UserTable.from_snapshots`'s arguments)."""
    from qanchor.model.vectors import encoder_texts

    long = snapshots[["user_id", "event_source", "event_text"]].explode(
        ["event_source", "event_text"]
    )
    long = long.dropna(subset=["event_source"])
    long = long[long["event_source"].isin(sources)]
    # The most recent `cap` events per (user, source), as the build caps them.
    long = keep_recent(long, caps, per_source, source="event_source")
    bag = _bag_rows(snapshots, sources) if whole_history or bag_vectorizer else None
    all_texts = long["event_text"].astype(str).to_numpy()
    if bag is not None:
        all_texts = np.concatenate([all_texts, bag["text"].astype(str).to_numpy()])
    raw, text_idx = np.unique(all_texts, return_inverse=True)
    texts, viewed = np.unique(encoder_texts(raw.tolist(), numbers), return_inverse=True)
    text_idx = viewed[text_idx]
    src_idx = pd.Categorical(long["event_source"], categories=sources).codes
    user_ids = snapshots["user_id"].astype(str).tolist()
    events: dict[str, dict[int, list[int]]] = {u: {} for u in user_ids}
    for uid, s, t in zip(long["user_id"].to_numpy(), src_idx, text_idx[: len(long)], strict=True):
        events[uid].setdefault(int(s), []).append(int(t))
    feats = _profile_features(user_ids, profiles, featurizer)
    bags = _user_bags(user_ids, bag, text_idx[len(long) :], sources) if whole_history else {}
    bag_vecs, tfidf = _bag_vectors(user_ids, bag, bag_vectorizer)
    inputs = [
        UserInput(
            sorted(events[u].items()),
            None if feats is None else feats[i],
            bags.get(u, no_bag()),
            None if bag_vecs is None else bag_vecs[i],
            None if tfidf is None else _sparse_row(tfidf, i),
        )
        for i, u in enumerate(user_ids)
    ]
    return UserTable(user_ids, texts.tolist(), inputs)


def _blocks(snapshots: pd.DataFrame, block: int):
    """The snapshot rows ``block`` at a time."""
    return (snapshots.iloc[a : a + block] for a in range(0, len(snapshots), block))


def _union(text_lists: list[list[str]]) -> tuple[list[str], list[np.ndarray]]:
    """The blocks' texts as one sorted list (as one block's ``np.unique`` sorts them), and per
    block the map of its text ids to that list's."""
    texts = sorted(set().union(*text_lists))
    at = {t: i for i, t in enumerate(texts)}
    return texts, [np.array([at[t] for t in ts], dtype=np.int64) for ts in text_lists]


def _merged(parts: list[UserTable]) -> UserTable:
    """One table of the blocks' users and texts."""
    if len(parts) == 1:
        return parts[0]
    texts, remaps = _union([p.texts for p in parts])
    inputs = [_remapped(u, m) for p, m in zip(parts, remaps, strict=True) for u in p.inputs]
    return UserTable([u for p in parts for u in p.user_ids], texts, inputs)


def _remapped(u: UserInput, remap: np.ndarray) -> UserInput:
    """``u`` with its text ids mapped through ``remap`` (a block's ids to the table's)."""
    src, ids, counts = u.bag
    events = [(s, remap[np.asarray(t, np.int64)].tolist()) for s, t in u.events]
    return dataclasses.replace(u, events=events, bag=(src, remap[ids], counts))


BAG_COLUMNS = ("bag_source", "bag_text", "bag_count")


def _bag_rows(snapshots: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Long rows ``user_id, source, text, count`` of the snapshots' whole-history bags."""
    missing = [c for c in BAG_COLUMNS if c not in snapshots.columns]
    if missing:
        from qanchor.errors import QAnchorError

        raise QAnchorError(
            f"user snapshots lack the whole-history bag columns {missing}, which this model "
            "reads: rebuild the dataset with this version (`qanchor data build`) and, with a "
            "feature store, apply and materialise it again"
        )
    long = snapshots[["user_id", *BAG_COLUMNS]].explode(list(BAG_COLUMNS))
    long = long.dropna(subset=["bag_source"])
    long = long[long["bag_source"].isin(sources)]
    long.columns = ["user_id", "source", "text", "count"]
    return long.astype({"count": np.float64}).reset_index(drop=True)


def fit_bag_vectorizer(
    snapshots: pd.DataFrame, sources: list[str], train_users: set[str], dim: int, seed: int
) -> BagVectorizer:
    """The bag-of-events vectorizer (TF-IDF + SVD to ``dim``) fitted on training users only."""
    train = snapshots[snapshots["user_id"].isin(train_users)]
    return BagVectorizer.fit(*snapshot_counts(train, sources), dim=dim, seed=seed)


def snapshot_counts(
    snapshots: pd.DataFrame, sources: list[str], block: int = BLOCK_USERS
) -> tuple[list[str], sp.csr_matrix]:
    """``count_matrix`` of the snapshots' whole-history bags, exploded ``block`` users at a time
    like :meth:`UserTable.from_snapshots` (pretraining's setup at 100,000 users peaked at 8.4 GB
    before both were built in blocks, 5.3 GB after)."""
    parts = [count_matrix(b["user_id"].astype(str).tolist(), _bag_rows(b, sources))
             for b in _blocks(snapshots, block)]  # fmt: skip
    if len(parts) == 1:
        return parts[0]
    texts, remaps = _union([t for t, _ in parts])
    mats = [sp.csr_matrix((m.data, r[m.indices], m.indptr), (m.shape[0], len(texts)))
            for (_, m), r in zip(parts, remaps, strict=True)]  # fmt: skip
    return texts, sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, 0))


def _user_bags(
    user_ids: list[str], bag: pd.DataFrame, text_idx: np.ndarray, sources: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per user: (source index, text id, count) arrays of the bag rows (already in user order)."""
    src = pd.Categorical(bag["source"], categories=sources).codes.astype(np.int64)
    cnt = bag["count"].to_numpy(np.float32)
    uid = bag["user_id"].astype(str).to_numpy()
    out = {}
    if len(uid):
        starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
        for a, b in zip(starts, np.r_[starts[1:], len(uid)], strict=True):
            out[uid[a]] = (src[a:b], text_idx[a:b].astype(np.int64), cnt[a:b])
    return out


def _bag_vectors(user_ids: list[str], bag: pd.DataFrame | None, vectorizer: BagVectorizer | None):
    """``(reduced vectors [users, dim], TF-IDF rows [users, terms])``, or ``(None, None)``."""
    if vectorizer is None or bag is None:
        return None, None
    texts, counts = count_matrix(user_ids, bag)
    tfidf = vectorizer.tfidf(texts, counts)
    return vectorizer.reduce(tfidf), tfidf


def _sparse_row(x, i: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = x.indptr[i], x.indptr[i + 1]
    return x.indices[a:b].astype(np.int32), x.data[a:b].astype(np.float32)


def _profile_features(
    user_ids: list[str], profiles: pd.DataFrame | None, featurizer: ProfileFeaturizer | None
) -> np.ndarray | None:
    if featurizer is None or featurizer.dim == 0:
        return None
    frame = pd.DataFrame({"user_id": user_ids})
    if profiles is not None:
        frame = frame.merge(profiles, on="user_id", how="left")
    return featurizer.transform(frame)
