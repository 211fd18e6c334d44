"""Users' model inputs for the engine: the per-user table, feature versions and text vectors.

A :class:`UserInputs` is a plain value: the engine (``qanchor.infer.anchor``) reads it and
never stores it, so each caller owns its own and several can be in use at once. Two ways to
build one, both with an :class:`InputBuilder`::

    builder = InputBuilder(model, featurizer, TextVectors(model))
    users = builder.load(snapshots, profiles)          # a whole table (evaluation, refresh, tuning)
    req = builder.request(snapshots, profiles, versions, peek)   # one serving request's users

Either way each user gets a version, the part of the prefix cache key that changes whenever
what the prefix depends on changes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from qanchor.infer.prefix_cache import PrefixEntry
from qanchor.model.data import UserTable

if TYPE_CHECKING:
    from qanchor.data.bag import BagVectorizer
    from qanchor.model.config import ModelConfig
    from qanchor.model.profile import ProfileFeaturizer

# (user id, feature version) -> the cached prefix, if any (without counting a hit)
Peek = Callable[[str, str], PrefixEntry | None]


@dataclass
class UserInputs:
    """Prefix inputs of a set of users.

    Attributes:
        table: the users' rows; a row's input is None when ``pinned`` holds its prefix.
        versions: each row's feature version (its part of the prefix cache key).
        vectors: [len(table.texts), d_enc] text vectors, or None: looked up when a prefix is
            computed.
        pinned: row -> the prefix the cache held when these inputs were built; used if the
            cache has evicted it since (another request may have run in between).
    """

    table: UserTable
    versions: list[str]
    vectors: torch.Tensor | None = None
    pinned: dict[int, PrefixEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rows = self.table.index()

    def knows(self, user_id: str) -> bool:
        """Whether ``user_id`` is among these users."""
        return user_id in self._rows

    @property
    def user_ids(self) -> list[str]:
        """The users, in row order."""
        return list(self._rows)

    def feature_versions(self) -> dict[str, str]:
        """User -> hash of the features the user's prefix is built from."""
        return {u: self.versions[i] for i, u in enumerate(self.table.user_ids)}

    def rows(self, user_ids: list[str]) -> list[int]:
        missing = [u for u in user_ids if u not in self._rows]
        if missing:
            raise KeyError(f"unknown users: {missing[:5]}")
        return [self._rows[u] for u in user_ids]

    def cached(self, user_id: str) -> bool:
        """Whether the user's prefix was in the cache when these inputs were built."""
        return self._rows[user_id] in self.pinned


class TextVectors:
    """Vectors of event texts from the model's encoder (frozen: through the on-disk cache)."""

    def __init__(self, model) -> None:  # noqa: ANN001 - a QAnchorModel
        self.model = model
        self._cache = None  # serving: a read-only VectorCache, loaded on first use
        self._lock = threading.Lock()

    def all(self, texts: list[str]) -> torch.Tensor | None:
        """[len(texts), d_enc], encoding (and caching on disk) the new ones; None for a tuned
        encoder, which encodes on the fly."""
        if self.model.cfg.encoder_lora_r:
            return None
        cache = self._vector_cache()
        vecs = cache.get(self._viewed(texts), self._encode)
        return torch.from_numpy(vecs).to(self.model.emb_token.device)

    def lookup(self, texts: list[str]) -> torch.Tensor:
        """[len(texts), d_enc] from the on-disk cache as loaded once, else encoded.

        New texts are not added: a long-running server must not grow without bound.
        """
        if self.model.cfg.encoder_lora_r:
            return self.model.event_vectors(texts)
        with self._lock:  # requests may arrive together: load the cache once
            if self._cache is None:
                self._cache = self._vector_cache()
        vecs = self._cache.get(self._viewed(texts), self._encode, save=False, keep=False)
        return torch.from_numpy(vecs).to(self.model.emb_token.device)

    def _vector_cache(self):  # noqa: ANN202 - a VectorCache
        from qanchor.model.artifact import encoder_fingerprint
        from qanchor.model.backbones import cache_root
        from qanchor.model.vectors import VectorCache

        return VectorCache(cache_root() / "event_vectors", encoder_fingerprint(self.model.cfg))

    def _viewed(self, texts: list[str]) -> list[str]:
        from qanchor.model.vectors import encoder_texts

        return encoder_texts(texts, self.model.cfg.text_numbers)

    def _encode(self, texts: list[str]) -> np.ndarray:
        enc = self.model.text_encoder
        return enc.encode(texts, max_length=self.model.cfg.encoder_max_length).numpy()


class InputBuilder:
    """Builds :class:`UserInputs` from snapshot rows for one model."""

    def __init__(self, model, featurizer, vectors: TextVectors) -> None:  # noqa: ANN001
        self.model, self.featurizer, self.vectors = model, featurizer, vectors

    def load(self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None = None) -> UserInputs:
        """All users of ``snapshots`` (rows as built by ``data build``), texts encoded up front."""
        table = self.table(snapshots, profiles)
        return UserInputs(table, input_versions(table), self.vectors.all(table.texts))

    def request(
        self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None, versions: dict[str, str],
        peek: Peek,
    ) -> UserInputs:  # fmt: skip
        """One serving request's users, keyed in the cache by their feature versions.

        Unlike :meth:`load` only users whose prefix is not cached get their inputs built
        (profile featurisation costs more than a cached user's whole suffix pass), and nothing
        is encoded up front: the event vectors of a missing prefix are looked up (or encoded)
        when it is computed, without growing the on-disk vector cache. A cached prefix is
        pinned in the inputs, so a concurrent request evicting it does not fail this one.

        Args:
            snapshots: the users' snapshot rows (``online_snapshots(...).snapshots``).
            profiles: their tabular source (``online_snapshots(...).tabular``).
            versions: user -> feature version (``UserFeatures.versions()``), the cache key part
                that changes whenever the user's served features change.
            peek: the cached prefix of (user, version), if any.
        """
        ids = snapshots["user_id"].astype(str).tolist()
        hits = {u: e for u in ids if (e := peek(u, versions[u])) is not None}
        cold = {u for u in ids if u not in hits}
        keep = snapshots["user_id"].astype(str).isin(cold)
        prof = None if profiles is None else profiles[profiles["user_id"].astype(str).isin(cold)]
        built = self.table(snapshots[keep], prof) if cold else UserTable([], [], [])
        at = built.index()
        # A cached user has no inputs (None): computing its prefix would fail loudly, not
        # silently, but its pinned entry means nothing needs to.
        table = UserTable(ids, built.texts, [built.inputs[at[u]] if u in at else None for u in ids])
        pinned = {i: hits[u] for i, u in enumerate(ids) if u in hits}
        return UserInputs(table, [versions[u] for u in ids], None, pinned)

    def table(self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None) -> UserTable:
        return user_table(self.model.cfg, self.featurizer, self.model.bag_vectorizer, snapshots,
                          profiles)  # fmt: skip


def user_table(
    cfg: ModelConfig, featurizer: ProfileFeaturizer, bag_vectorizer: BagVectorizer | None,
    snapshots: pd.DataFrame, profiles: pd.DataFrame | None,
) -> UserTable:  # fmt: skip
    """A model's inputs for ``snapshots``' users from its config, featurizer and bag vectorizer
    (:func:`qanchor.model.artifact.load_inputs` reads them without the model)."""
    return UserTable.from_snapshots(
        snapshots, cfg.sources, cfg.events_per_source, cfg.source_caps, profiles,
        featurizer, cfg.whole_history, bag_vectorizer, cfg.text_numbers,
    )  # fmt: skip


def input_versions(table: UserTable) -> list[str]:
    """Each row's feature version: :meth:`UserInputs.feature_versions` of a loaded table."""
    return [_input_version(table, i) for i in range(len(table.user_ids))]


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
