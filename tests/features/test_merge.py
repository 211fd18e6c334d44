"""A push's read-modify-write of a user's row, without Feast: what it counts and how it caps.

The reference is the build: a pushed row must equal the row a build over the log with the
new events writes, wherever the served row holds enough to know (the module docstring of
``qanchor.features.push`` lists where it cannot).
"""

from __future__ import annotations

import pandas as pd
from feature_helpers import as_lists, bag_of, rebuilt

from qanchor.features.history_merge import Caps, merged_history

CAPS = Caps(per_source={"b": 3}, default=2, bag_texts=3)
BUILD = {"source_caps": CAPS.per_source, "max_events_per_source": CAPS.default,
         "max_bag_texts": CAPS.bag_texts}  # fmt: skip


def log(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Events from (user, day, source, text) tuples."""
    frame = pd.DataFrame(rows, columns=["user_id", "ts", "source", "text"])
    return frame.assign(ts=pd.to_datetime(frame["ts"], utc=True), value=1.5)


# u1's bag of source "a" holds four texts under a cap of three: "rare" (once, oldest) is out.
HISTORY = log(
    [("u1", "2026-01-01", "a", "rare"), ("u1", "2026-01-02", "a", "x"),
     ("u1", "2026-01-03", "a", "y"), ("u1", "2026-01-04", "a", "x"),
     ("u1", "2026-01-05", "a", "z"), ("u1", "2026-01-06", "a", "y"),
     ("u1", "2026-01-07", "b", "p"), ("u2", "2026-01-03", "a", "x")]
)  # fmt: skip


def served(users: list[str]) -> pd.DataFrame:
    return rebuilt(HISTORY, users, BUILD).assign(snapshot_ts=pd.Timestamp("2026-02-01", tz="UTC"))


def test_a_push_equals_a_rebuild_with_the_new_events_under_binding_caps() -> None:
    new = log([("u1", "2026-02-02", "a", "z"), ("u1", "2026-02-03", "a", "z"),
               ("u1", "2026-02-04", "a", "w"), ("u1", "2026-02-05", "b", "q"),
               ("u2", "2026-02-02", "a", "x"), ("u3", "2026-02-02", "c", "new")])  # fmt: skip
    users = ["u1", "u2", "u3"]
    got = merged_history(served(users), new, CAPS)
    want = rebuilt(pd.concat([HISTORY, new]), users, BUILD)
    assert as_lists(got) == as_lists(want)
    # Not vacuous: the caps bind and the order moved ("z" overtook "x" and "y" by count).
    assert bag_of(as_lists(got)["u1"]) == {("a", "z"): 3, ("a", "y"): 2, ("a", "x"): 2,
                                           ("b", "q"): 1, ("b", "p"): 1}  # fmt: skip
    assert as_lists(got)["u1"]["event_text"] == ["z", "w", "p", "q"]  # per source, oldest first
    assert (got["snapshot_ts"] > pd.Timestamp("2026-02-01", tz="UTC")).all()


def test_a_redelivered_event_is_not_counted_again() -> None:
    new = log(
        [("u1", "2026-02-02", "a", "z"), ("u1", "2026-02-02", "a", "z")]
    )  # twice in one batch
    once = merged_history(served(["u1"]), new, CAPS)
    assert bag_of(as_lists(once)["u1"])[("a", "z")] == 2
    again = merged_history(once, new, CAPS)  # the stream redelivers the batch
    assert again.empty


def test_an_event_older_than_a_full_window_counts_as_seen() -> None:
    # u1's window of "a" is full (cap 2: the events of 01-05 and 01-06); an event of 01-02 not in
    # it may be a redelivery of one that fell out: not counted (the next build counts it).
    redelivered = log([("u1", "2026-01-02", "a", "x")])
    assert merged_history(served(["u1"]), redelivered, CAPS).empty
    # u1's window of "b" (cap 3) holds its only event: it is complete, so a late event is new.
    late = log([("u1", "2025-12-01", "b", "p")])
    got = as_lists(merged_history(served(["u1"]), late, CAPS))["u1"]
    assert bag_of(got)[("b", "p")] == 2 and got["event_text"][-2:] == ["p", "p"]


def test_a_text_the_bag_cap_dropped_restarts_at_its_pushed_count() -> None:
    # The documented limit: the served row no longer knows "rare"'s old count.
    new = log([("u1", "2026-02-02", "a", "rare"), ("u1", "2026-02-03", "a", "rare")])
    got = bag_of(as_lists(merged_history(served(["u1"]), new, CAPS))["u1"])
    want = bag_of(as_lists(rebuilt(pd.concat([HISTORY, new]), ["u1"], BUILD))["u1"])
    assert got[("a", "rare")] == 2 and want[("a", "rare")] == 3
