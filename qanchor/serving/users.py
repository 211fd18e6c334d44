"""Users of a request, read from the Feast online store, and their prefix-cache keys.

users = RequestUsers.read(store_cfg, ["u1", "u2"])
users.unknown(["u1", "u9"])             # ["u9"]: the store has no event history for it
inputs = users.inputs(embedder, ["u1"])  # u1's model inputs, keyed by its feature version
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.features.config import FeatureStoreConfig
from qanchor.features.feast_store import UserFeatures, online_snapshots
from qanchor.infer.engine import Embedder
from qanchor.infer.users import UserInputs


@dataclass
class RequestUsers:
    """The online features of a set of users and their feature versions."""

    features: UserFeatures
    versions: dict[str, str]
    known: set[str]

    @classmethod
    def read(cls, cfg: FeatureStoreConfig, user_ids: list[str]) -> RequestUsers:
        """One online-store read for all ``user_ids`` (duplicates are read once)."""
        feats = online_snapshots(cfg, list(dict.fromkeys(user_ids)))
        snaps = feats.snapshots
        # Feast answers an unknown user with nulls: no history row, so no row time.
        known = set(snaps.loc[snaps["snapshot_ts"].notna(), "user_id"].astype(str))
        return cls(feats, feats.versions(), known)

    def unknown(self, user_ids: list[str]) -> list[str]:
        return [u for u in dict.fromkeys(user_ids) if u not in self.known]

    def inputs(self, emb: Embedder, user_ids: list[str]) -> UserInputs:
        """``emb``'s model inputs of ``user_ids``, for this request only (``emb`` is unchanged).

        ``UserInputs.cached(user)`` tells whether the user's prefix was cached.
        """
        keep = list(dict.fromkeys(user_ids))
        snaps = self.features.snapshots
        snaps = snaps[snaps["user_id"].isin(keep)].reset_index(drop=True)
        tab = self.features.tabular
        tab = None if tab is None else tab[tab["user_id"].isin(keep)].reset_index(drop=True)
        return emb.request_users(snaps, tab, self.versions)
