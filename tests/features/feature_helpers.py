"""Comparisons of feature frames (list columns) used by the feature-store tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.data import snapshots as S
from qanchor.features.feast_store import LIST_DTYPES

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
LATER = pd.Timedelta(days=10)  # the second snapshot time, after the build's cutoff


def as_lists(snapshots: pd.DataFrame) -> dict[str, dict[str, list]]:
    """user -> list column (recent events and bag) -> plain list; NaN values as None.

    Each list must hold the numpy dtype snapshots.parquet holds (``LIST_DTYPES``: strings as
    objects, int64 counts, datetime64[us] naive UTC times), so a count read back as a float
    or a time as an integer fails here even where the values would compare equal.
    """
    out = {}
    for row in snapshots.itertuples(index=False):
        cols = {}
        for col, dtype in LIST_DTYPES.items():
            v = np.asarray(getattr(row, col))
            ok = v.dtype.kind in "OU" if dtype is object else v.dtype == np.dtype(dtype)
            assert ok, f"{row.user_id} {col}: {v.dtype}, expected {dtype}"
            cols[col] = [None if (isinstance(x, float) and np.isnan(x)) else x for x in v.tolist()]
        out[row.user_id] = cols
    return out


def copy_built(built: Path, dest: Path) -> Path:
    """A private copy of a built dataset (without any feature-store state)."""
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns("feature_store"))
    return dest


def rows_at(snapshots: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
    return snapshots[snapshots["snapshot_ts"] == ts].reset_index(drop=True)


def assert_profiles_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    want = (
        want.drop(columns="snapshot_ts", errors="ignore").set_index("user_id").loc[got["user_id"]]
    )
    got = got.set_index("user_id")[want.columns]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def rebuilt(events: pd.DataFrame, users: list[str], build: dict) -> pd.DataFrame:
    """The snapshot lists a build over ``events`` writes for ``users`` (build config ``build``).

    The reference a push must reproduce: :mod:`qanchor.data.snapshots` as the builder calls it.
    """
    index = pd.Index(users, name="user_id")
    ev = events[events["user_id"].isin(users)]
    capped = S.cap_events(ev, build["source_caps"], build["max_events_per_source"])
    rows = S.snapshot_lists(capped, index, pd.NaT)
    return rows.merge(S.bag_lists(ev, index, build["max_bag_texts"]), on="user_id")


def bag_of(lists: dict[str, list]) -> dict[tuple[str, str], int]:
    """(source, text) -> count of one :func:`as_lists` user's bag."""
    keys = zip(lists["bag_source"], lists["bag_text"], strict=True)
    return dict(zip(keys, lists["bag_count"], strict=True))
