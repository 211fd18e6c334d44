"""Deterministic train/val/test assignment of users."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from qanchor.data.contract import SPLITS


def hash_unit(user_ids: pd.Series | list[str], salt: int) -> np.ndarray:
    """Map each user id to a stable number in [0, 1).

    A keyed hash (not Python's randomised ``hash``) so the same user lands in the same split on
    every machine and every run, and adding users never moves existing ones.
    """
    out = np.empty(len(user_ids), dtype=np.float64)
    for i, uid in enumerate(user_ids):
        digest = hashlib.blake2b(f"{salt}:{uid}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2**64
    return out


def assign_splits(
    user_ids: pd.Series,
    given: pd.Series | None,
    val_fraction: float,
    test_fraction: float,
    salt: int,
) -> pd.Series:
    """Return the split of each user: the dataset's own ``split`` where given, else by hash.

    Args:
        user_ids: distinct user ids.
        given: per-user split from labels.parquet (index = user_id), NaN where absent, or None.
        val_fraction: share of hashed users put in ``val``.
        test_fraction: share of hashed users put in ``test``.
        salt: changes the hashed assignment (the build seed).

    Returns:
        A string Series indexed like ``user_ids`` with values in ``SPLITS``.
    """
    u = hash_unit(list(user_ids), salt)
    hashed = np.where(
        u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train")
    )
    split = pd.Series(hashed, index=pd.Index(user_ids, name="user_id"), name="split", dtype=object)
    if given is not None:
        known = given.reindex(split.index)
        split = known.where(known.notna(), split)
    assert set(split.unique()) <= set(SPLITS)
    return split.astype(str)
