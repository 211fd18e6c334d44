"""Comparisons of feature frames (list columns) used by the feature-store tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.features.store import EVENT_COLUMNS

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
LATER = pd.Timedelta(days=10)  # the second snapshot time, after the build's cutoff


def as_lists(snapshots: pd.DataFrame) -> dict[str, dict[str, list]]:
    """user -> column -> plain list, event times as naive UTC microsecond timestamps."""
    out = {}
    for row in snapshots.itertuples(index=False):
        cols = {}
        for col in EVENT_COLUMNS:
            v = np.asarray(getattr(row, col))
            if col == "event_ts":
                v = pd.to_datetime(v).astype("datetime64[us]")
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
