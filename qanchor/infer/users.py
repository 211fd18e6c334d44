"""How an :class:`~qanchor.infer.engine.Embedder` gets its users' inputs and their versions.

Two ways in: :meth:`UserInputs.load_users` takes a whole table of users up front (evaluation,
batch refresh, tuning) and encodes their event texts once; :meth:`UserInputs.set_request_users`
takes one serving request's users and builds inputs only for those whose prefix is not cached.
Either way each user gets a version, the part of the prefix cache key that changes whenever
what the prefix depends on changes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch

from qanchor.model.data import UserTable


class UserInputs:
    """Mixin of :class:`~qanchor.infer.engine.Embedder`: the users' table, versions, vectors."""

    def load_users(self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None = None) -> None:
        """Set the users this embedder can serve (snapshot rows as built by ``data build``)."""
        self.table = self._table(snapshots, profiles)
        self._rows = self.table.index()
        self._versions = [_input_version(self.table, i) for i in range(len(self.table.user_ids))]
        self._vectors = self._text_vectors(self.table.texts)

    def set_request_users(
        self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None, versions: dict[str, str]
    ) -> None:
        """Set the users of one serving request, keyed in the cache by their feature versions.

        Unlike :meth:`load_users` only users whose prefix is not cached get their inputs built
        (profile featurisation costs more than a cached user's whole suffix pass), and nothing
        is encoded up front: the event vectors of a missing prefix are looked up (or encoded)
        when it is computed, without growing the on-disk vector cache. The prefix cache
        persists across calls, so repeated requests for a user hit it.

        Args:
            snapshots: the users' snapshot rows (``online_snapshots(...).snapshots``).
            profiles: their tabular source (``online_snapshots(...).tabular``).
            versions: user -> feature version (``UserFeatures.versions()``), the cache key part
                that changes whenever the user's served features change.
        """
        ids = snapshots["user_id"].astype(str).tolist()
        cold = {u for u in ids if (u, versions[u], self.model_version) not in self.cache}
        keep = snapshots["user_id"].astype(str).isin(cold)
        prof = None if profiles is None else profiles[profiles["user_id"].astype(str).isin(cold)]
        built = self._table(snapshots[keep], prof) if cold else UserTable([], [], [])
        at = built.index()
        # A cached user has no inputs (None): computing its prefix would fail loudly, not
        # silently; within one call nothing evicts it (prefixes() looks up before it inserts).
        self.table = UserTable(
            ids, built.texts, [built.inputs[at[u]] if u in at else None for u in ids]
        )
        self._rows = self.table.index()
        self._versions = [versions[u] for u in ids]
        self._vectors = None

    def _table(self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None) -> UserTable:
        cfg = self.model.cfg
        return UserTable.from_snapshots(
            snapshots, cfg.sources, cfg.events_per_source, cfg.source_caps, profiles,
            self.featurizer, cfg.whole_history, self.model.bag_vectorizer,
        )  # fmt: skip

    def _text_vectors(self, texts: list[str]) -> torch.Tensor | None:
        if self.model.cfg.encoder_lora_r:
            return None  # a tuned encoder encodes on the fly
        from qanchor.model.artifact import encoder_fingerprint
        from qanchor.model.backbones import cache_root
        from qanchor.model.vectors import VectorCache

        cache = VectorCache(cache_root() / "event_vectors", encoder_fingerprint(self.model.cfg))
        return torch.from_numpy(cache.get(texts, self._encode_texts)).to(self.device)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        enc = self.model.text_encoder
        return enc.encode(texts, max_length=self.model.cfg.encoder_max_length).numpy()

    def _lookup_vectors(self, texts: list[str]) -> torch.Tensor:
        """Vectors of a request's texts: from the on-disk cache as loaded once, else encoded.

        New texts are not added: a long-running server must not grow without bound.
        """
        if self._vector_cache is None:
            from qanchor.model.artifact import encoder_fingerprint
            from qanchor.model.backbones import cache_root
            from qanchor.model.vectors import VectorCache

            fingerprint = encoder_fingerprint(self.model.cfg)
            self._vector_cache = VectorCache(cache_root() / "event_vectors", fingerprint)
        vecs = self._vector_cache.get(texts, self._encode_texts, save=False, keep=False)
        return torch.from_numpy(vecs).to(self.device)


def _input_version(table: UserTable, row: int) -> str:
    """A hash of everything the prefix depends on: event texts per source and the profile."""
    u = table.inputs[row]
    h = hashlib.blake2b(digest_size=8)
    for s, ids in u.events:
        h.update(f"{s}:".encode() + "\x1f".join(table.texts[i] for i in ids).encode())
    src, text_ids, counts = u.bag
    if len(text_ids):
        h.update(b"\x1ebag:" + "\x1f".join(table.texts[i] for i in text_ids).encode())
        h.update(np.ascontiguousarray(src).tobytes() + np.ascontiguousarray(counts).tobytes())
    for dense in (u.profile, u.bag_vec):
        if dense is not None:
            h.update(np.ascontiguousarray(dense).tobytes())
    return h.hexdigest()
