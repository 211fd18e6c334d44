"""Per-source capping of a user's events: the build and the model keep the same recent events."""

from __future__ import annotations

import pandas as pd

from qanchor.data.snapshots import cap_events, keep_recent, snapshot_lists
from qanchor.model.data import UserTable

# (user, day of January, source, text), out of time order and with the users interleaved.
ROWS = [("u1", 5, "a", "a5"), ("u2", 1, "a", "x1"), ("u1", 1, "a", "a1"), ("u1", 3, "b", "b3"),
        ("u1", 9, "a", "a9"), ("u2", 2, "b", "y2"), ("u1", 7, "a", "a7"), ("u1", 2, "b", "b2"),
        ("u1", 4, "b", "b4"), ("u1", 8, "c", "c8")]  # fmt: skip


def history() -> pd.DataFrame:
    h = pd.DataFrame(ROWS, columns=["user_id", "day", "source", "text"])
    ts = pd.to_datetime("2026-01-" + h["day"].astype(str).str.zfill(2), utc=True)
    return h.assign(ts=ts, value=1.0).drop(columns="day")


def test_keep_recent_keeps_the_last_rows_of_each_user_and_source_in_place() -> None:
    rows = history().sort_values("ts", kind="stable")  # time order, users and sources mixed
    kept = keep_recent(rows, {"a": 2}, default_cap=1)
    assert kept["text"].tolist() == ["x1", "y2", "b4", "a7", "c8", "a9"]


def test_the_build_and_the_model_keep_the_same_recent_events() -> None:
    caps, default = {"a": 2}, 1
    capped = cap_events(history(), caps, default)
    assert list(zip(capped["user_id"], capped["text"], strict=True)) == [
        ("u1", "a7"), ("u1", "a9"), ("u1", "b4"), ("u1", "c8"), ("u2", "x1"), ("u2", "y2")
    ]  # fmt: skip
    # The model caps the time-ordered events of a wider snapshot row again, with the same caps.
    users = pd.Index(["u1", "u2"], name="user_id")
    wide = snapshot_lists(cap_events(history(), {}, 10), users, pd.Timestamp("2026-02-01"))
    table = UserTable.from_snapshots(wide, ["a", "b", "c"], default, caps)
    read = {
        (u, table.texts[t]) for u, inp in zip(table.user_ids, table.inputs, strict=True)
        for _, ids in inp.events for t in ids
    }  # fmt: skip
    assert read == set(zip(capped["user_id"], capped["text"], strict=True))
