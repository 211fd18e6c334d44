"""A disk cache of frozen event-encoder vectors, keyed by encoder fingerprint and text.

With a frozen event encoder (the CPU presets), every event text is encoded once, ever: training,
evaluation, serving and incremental refreshes all look vectors up here and encode only texts they
have not seen. Layout: ``<root>/<fingerprint>/{keys.npy, vectors.npy}``, rewritten atomically.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

NUMBER_VIEWS = ("keep", "round")
# Decimals (with thousands separators) and integers of 5+ digits: amounts, prices and ids, which
# make nearly every event text distinct. Shorter integers (ratings, years, counts) stay exact.
_NUMBER = re.compile(r"\d[\d,]*\.\d+|\d{5,}")


def _one_digit(match: re.Match) -> str:
    x = float(match.group().replace(",", ""))
    if x == 0:
        return "0"
    e = math.floor(math.log10(x))
    r = round(x / 10**e) * 10.0**e  # round(9.6) = 10: one digit still, one magnitude up
    return f"{r:.0f}" if e >= 0 else f"{r:.{-e}f}"


def encoder_texts(texts: list[str], numbers: str) -> list[str]:
    """The strings the frozen event encoder reads for ``texts`` (``ModelConfig.text_numbers``).

    ``"round"`` rounds decimals and integers of 5+ digits to one significant digit ("paid 41.43
    at CityMarket" -> "paid 40 at CityMarket"). Why: on a payment log the amount makes almost
    every event text distinct (401,205 distinct texts for 20,000 synthetic users, ~19 min to
    encode at 350 texts/s on 2 fp32 cores), while a sentence encoder reads little of a number beyond its
    magnitude; rounded, 9,887 (40x fewer). The exact text still reaches the bag-of-events view
    and the bag heads, and the amount the event's value.
    """
    if numbers == "keep":
        return texts
    if numbers != "round":
        raise ValueError(f"text_numbers must be one of {NUMBER_VIEWS}, got {numbers!r}")
    return [_NUMBER.sub(_one_digit, t) for t in texts]


def text_key(text: str) -> bytes:
    """16-byte key of a text (collisions are negligible at any realistic vocabulary)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class VectorCache:
    """Vectors of texts under one encoder fingerprint."""

    def __init__(self, root: str | Path, fingerprint: str) -> None:
        self.dir = Path(root) / fingerprint
        self._keys: dict[bytes, int] = {}
        self._vecs: np.ndarray | None = None
        self.hits = self.misses = 0
        if (self.dir / "keys.npy").is_file():
            keys = np.load(self.dir / "keys.npy")
            # Memory-mapped: the cache holds every text ever encoded (435k texts, 667 MB on the
            # benchmark machine after the 20,000-user chain), and a reader (a batch-embedding shard, the service) only
            # touches its own users' rows. A save renames new files into place, so a mapping of
            # the old file stays valid.
            self._vecs = np.load(self.dir / "vectors.npy", mmap_mode="r")
            self._keys = {k.tobytes(): i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._keys)

    def get(
        self,
        texts: list[str],
        encode: Callable[[list[str]], np.ndarray],
        save: bool = True,
        keep: bool = True,
    ) -> np.ndarray:
        """[len(texts), d] float32 vectors; texts not cached yet are encoded and added.

        With ``keep=False`` new texts are encoded but not added (a server's memory stays flat).
        """
        keys = [text_key(t) for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self._keys}.items()
        )
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        if missing and not keep:
            return self._without_adding(keys, missing, encode)
        if missing:
            new = np.asarray(encode([t for _, t in missing]), dtype=np.float32)
            base = 0 if self._vecs is None else len(self._vecs)
            self._vecs = new if self._vecs is None else np.concatenate([self._vecs, new])
            self._keys.update({k: base + i for i, (k, _) in enumerate(missing)})
            if save:
                self.save()
        idx = np.fromiter((self._keys[k] for k in keys), dtype=np.int64, count=len(keys))
        assert self._vecs is not None or not texts
        return self._vecs[idx] if len(idx) else np.zeros((0, 0), np.float32)

    def _without_adding(
        self, keys: list[bytes], missing: list[tuple[bytes, str]], encode: Callable
    ) -> np.ndarray:
        new = np.asarray(encode([t for _, t in missing]), dtype=np.float32)
        fresh = {k: i for i, (k, _) in enumerate(missing)}
        out = np.empty((len(keys), new.shape[1]), np.float32)
        for i, k in enumerate(keys):
            out[i] = new[fresh[k]] if k in fresh else self._vecs[self._keys[k]]
        return out

    def save(self) -> None:
        """Write keys and vectors atomically (temp files, then rename)."""
        if self._vecs is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(sorted(self._keys, key=self._keys.get)), dtype=np.uint8)
        tag = uuid.uuid4().hex[:8]
        for name, arr in (("vectors.npy", self._vecs), ("keys.npy", keys.reshape(-1, 16))):
            tmp = self.dir / f".{name}.{tag}"
            with open(tmp, "wb") as f:
                np.save(f, arr)
            os.replace(tmp, self.dir / name)
