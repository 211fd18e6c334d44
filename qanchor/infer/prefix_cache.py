"""A byte-bounded LRU cache of user prefix KV states.

An entry is one user's prefix keys/values for every layer, unpadded ([kv_heads, L, head_dim] per
layer). Keys are whatever identifies a prefix (user id, feature version, model version): when a
user's features change, the caller asks with a new key and the stale entry ages out. Every
lookup and change holds a lock: requests running on several threads may share one cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PrefixEntry:
    """One user's prefix state: per-layer (keys, values), the prefix length, the user token.

    ``user`` is the encoder's user token [d_llm], kept for models whose head reads it
    (``ModelConfig.user_skip``); it costs one token's width next to the per-layer keys/values.
    ``head_input`` is what scenarios' bag heads read of the user (its TF-IDF row and tabular
    input, :mod:`qanchor.tune.bag_head`): a cached user has no inputs built, so it travels here.
    """

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    length: int
    user: torch.Tensor | None = None
    head_input: tuple = (None, None)

    @property
    def nbytes(self) -> int:
        kv = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.kv)
        user = 0 if self.user is None else self.user.numel() * self.user.element_size()
        return kv + user + sum(a.nbytes for a in _arrays(self.head_input))


def _arrays(head_input: tuple) -> list[np.ndarray]:
    row, tab = head_input
    return [*(row or ()), *([] if tab is None else [tab])]


class PrefixCache:
    """LRU over :class:`PrefixEntry` with a byte budget and hit/miss/eviction counters."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, PrefixEntry] = OrderedDict()
        self.bytes = self.hits = self.misses = self.evictions = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def peek(self, key: Hashable) -> PrefixEntry | None:
        """The entry, if any, without counting a hit or a miss or refreshing its recency."""
        with self._lock:
            return self._data.get(key)

    def get(self, key: Hashable) -> PrefixEntry | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: PrefixEntry) -> None:
        """Insert (or replace) and evict least-recently-used entries beyond the budget.

        An entry larger than the whole budget is not stored (it would evict everything).
        """
        with self._lock:
            if key in self._data:
                self.bytes -= self._data.pop(key).nbytes
            if entry.nbytes > self.max_bytes:
                return
            self._data[key] = entry
            self.bytes += entry.nbytes
            while self.bytes > self.max_bytes:
                _, old = self._data.popitem(last=False)
                self.bytes -= old.nbytes
                self.evictions += 1

    def invalidate(self, match) -> int:
        """Drop every entry whose key satisfies ``match(key)``; returns how many."""
        with self._lock:
            stale = [k for k in self._data if match(k)]
            for k in stale:
                self.bytes -= self._data.pop(k).nbytes
            return len(stale)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self), "bytes": self.bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}  # fmt: skip
