"""Model-side data: a built dataset's tables and deterministic pair sampling (users' prefix
inputs are built by :mod:`qanchor.model.user_table`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.model.profile import built_tables, tabular_frame
from qanchor.model.user_table import UserTable, fit_bag_vectorizer

__all__ = ["BuiltData", "PairSampler", "UserTable", "fit_bag_vectorizer", "require_built"]


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

        every = pd.read_parquet(root / "users.parquet")
        frame, wanted = every, None  # every user
        asked = None if users is None else every["user_id"].isin(set(users))
        if asked is not None and not asked.all():
            frame = every[asked].reset_index(drop=True)
            wanted = frame["user_id"].tolist()

        def read(name: str) -> pd.DataFrame:
            path = root / name
            return pd.read_parquet(path) if wanted is None else read_user_rows(path, wanted)

        if feature_repo:
            from qanchor.features import FeatureStoreConfig
            from qanchor.features.training import training_snapshots

            cfg = FeatureStoreConfig(data=str(root), repo=str(feature_repo))
            # Every user's join, saved once for all stages; this stage keeps its own users.
            feats = training_snapshots(cfg, every[["user_id", "cutoff"]], users=wanted)
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
