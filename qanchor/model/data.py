"""Model-side data: users' prefix inputs from snapshots, and deterministic pair sampling."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.data.bag import BagVectorizer, count_matrix
from qanchor.data.snapshots import keep_recent
from qanchor.model.layout import UserInput, no_bag
from qanchor.model.profile import ProfileFeaturizer, built_tables, tabular_frame


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
    ) -> UserTable:
        """Build from snapshot rows (list columns event_source/event_text, ordered by time).

        Sources the model does not know are ignored (a model reads what it was trained on).
        ``whole_history`` and ``bag_vectorizer`` read the ``bag_*`` list columns (a build's
        whole-history bag) into ``UserInput.bag`` and ``UserInput.bag_vec``. ``texts`` are
        what the event encoder reads (``numbers``: ``ModelConfig.text_numbers``): events whose
        texts differ only in rounded numbers share one text and one vector.
        """
        from qanchor.model.vectors import encoder_texts

        caps = caps or {}
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
        for uid, s, t in zip(
            long["user_id"].to_numpy(), src_idx, text_idx[: len(long)], strict=True
        ):
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
        return cls(user_ids, texts.tolist(), inputs)


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
    texts, counts = count_matrix(train["user_id"].astype(str).tolist(), _bag_rows(train, sources))
    return BagVectorizer.fit(texts, counts, dim=dim, seed=seed)


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


def require_built(root: str | Path) -> Path:
    """``root`` as a Path, or a clear error if it is not a built dataset directory."""
    from qanchor.errors import QAnchorError

    root = Path(root)
    if not (root / "manifest.json").is_file():
        raise QAnchorError(
            f"{root}: not a built dataset (no manifest.json); run `qanchor data build` first"
        )
    return root


@dataclass
class BuiltData:
    """What pretraining reads from a built dataset directory."""

    root: Path
    manifest: dict
    users: pd.DataFrame
    snapshots: pd.DataFrame
    pairs: pd.DataFrame
    profiles: pd.DataFrame | None  # the tabular source: profile + activity aggregates

    @classmethod
    def load(
        cls, root: str | Path, feature_repo: str | Path | None = None,
        users: Collection[str] | None = None,
    ) -> BuiltData:  # fmt: skip
        """Read a built dataset; with ``feature_repo``, user snapshots come from the feature store.

        The feature-store path reads each user's events and profile point-in-time at the user's
        cutoff (``get_historical_features``) from a store applied over ``root`` (``qanchor
        features apply``; ``qanchor run --feature-repo`` does it), so training reads exactly
        what the store would have served at that time. The first read is saved and reused by
        later stages (:mod:`qanchor.features.training`).

        ``users``: read only these users' rows (a filtered parquet read), so a stage that looks
        at a sample holds the sample, not the build (100,000 synthetic users: 2.3 GB to load
        whole). None: every user.
        """
        import json

        root = require_built(root)
        from qanchor.data.user_rows import read_user_rows

        frame = pd.read_parquet(root / "users.parquet")
        wanted = None  # every user
        asked = None if users is None else frame["user_id"].isin(set(users))
        if asked is not None and not asked.all():
            frame = frame[asked].reset_index(drop=True)
            wanted = frame["user_id"].tolist()

        def read(name: str) -> pd.DataFrame:
            path = root / name
            return pd.read_parquet(path) if wanted is None else read_user_rows(path, wanted)

        if feature_repo:
            from qanchor.features import FeatureStoreConfig
            from qanchor.features.training import training_snapshots

            cfg = FeatureStoreConfig(data=str(root), repo=str(feature_repo))
            feats = training_snapshots(cfg, frame[["user_id", "cutoff"]])
            snapshots, profiles = feats.snapshots, feats.tabular
        else:
            snapshots = read("snapshots.parquet")
            profiles = tabular_frame(*built_tables(root, wanted))
        manifest = json.loads((root / "manifest.json").read_text())
        pairs = read("pairs.parquet")
        return cls(root, manifest, frame, snapshots, pairs, profiles)

    @property
    def sources(self) -> list[str]:
        return list(self.manifest["sources"])

    def split_users(self, split: str) -> list[str]:
        return self.users.loc[self.users["split"] == split, "user_id"].tolist()


class PairSampler:
    """Deterministic pair sampling: batch ``step`` is a pure function of (seed, step).

    Each epoch visits every user once in a seeded order and picks one of the user's pairs (the
    D_future pair with probability ``future_prob``, else a topic pair), so a batch rarely holds
    the same user twice (which would make a false negative) and resuming needs only the step.
    """

    def __init__(
        self, pairs: pd.DataFrame, user_rows: dict[str, int], seed: int, future_prob: float
    ) -> None:
        pairs = pairs[pairs["user_id"].isin(user_rows)]
        self.seed, self.future_prob = seed, future_prob
        self.users = sorted(pairs["user_id"].unique())
        if not self.users:
            from qanchor.errors import QAnchorError

            raise QAnchorError("no pretraining pairs for the training users")
        self.rows = [user_rows[u] for u in self.users]
        groups = {u: g for u, g in pairs.groupby("user_id", sort=False)}
        self.future = [_pairs_of(groups[u], True) for u in self.users]
        self.topics = [_pairs_of(groups[u], False) for u in self.users]
        self._epoch: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _epoch_arrays(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            n = len(self.users)
            self._epoch = (epoch, rng.permutation(n), rng.random(n), rng.integers(0, 2**31, n))
        return self._epoch[1:]

    def sample(self, step: int, batch_size: int) -> list[tuple[int, str, str]]:
        """The global batch of ``step``: (user row, query, answer) triples."""
        out = []
        for k in range(step * batch_size, (step + 1) * batch_size):
            order, coin, pick = self._epoch_arrays(k // len(self.users))
            i = order[k % len(self.users)]
            fut, top = self.future[i], self.topics[i]
            pool = fut if (coin[i] < self.future_prob and fut) or not top else top
            q, a = pool[pick[i] % len(pool)]
            out.append((self.rows[i], q, a))
        return out


def _pairs_of(g: pd.DataFrame, future: bool) -> list[tuple[str, str]]:
    sel = g[(g["kind"] == "future") == future]
    return list(zip(sel["query"].tolist(), sel["answer"].tolist(), strict=True))
