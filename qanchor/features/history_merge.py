"""A pushed row: new events merged into a user's served history, shaped as the build shapes it.

:func:`qanchor.features.push.push_events` reads the served rows, keeps the events not counted
yet (:func:`unseen_events`, the rules are in ``push``'s module docstring) and writes back the rows
:func:`merged_history` returns: the build's caps and ordering re-applied, through the same
functions the build uses (:mod:`qanchor.data.snapshots`). Pandas only, no feature store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from qanchor.data.snapshots import (
    BAG_COLUMNS,
    EVENT_COLUMNS,
    bag_counts,
    bag_snapshot,
    cap_bag,
    cap_events,
    snapshot_lists,
    source_caps,
)
from qanchor.errors import QAnchorError
from qanchor.features.config import FeatureStoreConfig

EVENT_FIELDS = ["user_id", "ts", "source", "text", "value"]
# Long (one row per event or bag text) names of the served list columns.
RECENT_NAMES = dict(zip(EVENT_COLUMNS, ("source", "ts", "text", "value"), strict=True))
BAG_NAMES = dict(zip(BAG_COLUMNS, ("source", "text", "count", "last_ts"), strict=True))


@dataclass(frozen=True)
class Caps:
    """The build's snapshot caps (``BuildConfig``), so a pushed row is shaped like a built one.

    Attributes:
        per_source: events kept per user for the named sources.
        default: events kept per user for any other source.
        bag_texts: distinct texts kept per user and source in the bag.
    """

    per_source: dict[str, int]
    default: int
    bag_texts: int

    def of(self, sources: pd.Series) -> pd.Series:
        """The recent-event cap of each source in ``sources``."""
        return source_caps(sources, self.per_source, self.default)


def build_caps(cfg: FeatureStoreConfig) -> Caps:
    """The caps of the build ``cfg.data`` (its manifest's config)."""
    build = json.loads((Path(cfg.data) / "manifest.json").read_text())["config"]
    if "max_bag_texts" not in build:
        raise QAnchorError(f"{cfg.data} was built by an older qanchor (no whole-history bag): "
                           "rebuild it (`qanchor data build`), then apply and materialise")  # fmt: skip
    return Caps(dict(build.get("source_caps") or {}), int(build["max_events_per_source"]),
                int(build["max_bag_texts"]))  # fmt: skip


def merged_history(
    current: pd.DataFrame, events: pd.DataFrame, caps: Caps, new: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The event-history rows of the users with unseen ``events``, shaped as the build shapes them.

    Args:
        current: the users' rows as served (``online_snapshots(...).snapshots``).
        events: new events, ``EVENT_FIELDS`` (``value`` optional).
        caps: the build's caps.
        new: ``unseen_events`` of ``events``, if the caller already has them.

    Returns:
        One row per user with at least one unseen event (others keep their stored row):
        ``user_id``, the event and bag lists and ``snapshot_ts``. The time moves strictly
        forward (at least a second past the previous row, never before the newest event or
        now): online stores keep the newer row per user by this time, at one-second
        resolution, and an equal time would drop the push.
    """
    recent, bag = served_long(current, RECENT_NAMES), served_long(current, BAG_NAMES)
    if new is None:
        new = unseen_events(recent, pushed_events(events), caps)
    if new.empty:
        return pd.DataFrame(columns=["user_id", *EVENT_COLUMNS, *BAG_COLUMNS, "snapshot_ts"])
    users = pd.Index(sorted(new["user_id"].unique()), name="user_id")
    recent, bag = recent[recent["user_id"].isin(users)], bag[bag["user_id"].isin(users)]
    recent = pd.concat([recent, new], ignore_index=True).astype({"value": "float64"})
    rows = snapshot_lists(cap_events(recent, caps.per_source, caps.default), users, pd.NaT)
    counts = pd.concat([bag, bag_counts(new)], ignore_index=True)
    bag = counts.groupby(["user_id", "source", "text"], sort=False, as_index=False).agg(
        count=("count", "sum"), last_ts=("last_ts", "max")
    )
    rows = rows.merge(bag_snapshot(cap_bag(bag, caps.bag_texts), users), on="user_id")
    served = current.drop_duplicates("user_id").set_index("user_id")["snapshot_ts"]
    previous = pd.to_datetime(served.reindex(users), utc=True).reset_index(drop=True)
    newest = new.groupby("user_id")["ts"].max().reindex(users).reset_index(drop=True)
    now = pd.Timestamp(datetime.now(UTC)).floor("s")
    candidates = pd.DataFrame({"after_previous": previous + pd.Timedelta(seconds=1),
                               "newest_event": newest, "now": now})  # fmt: skip
    rows["snapshot_ts"] = candidates.max(axis=1)  # NaT (an unknown user) is skipped
    return rows


def unseen_events(recent: pd.DataFrame, events: pd.DataFrame, caps: Caps) -> pd.DataFrame:
    """The ``events`` a user's served row has not counted yet (see the module docstring).

    Args:
        recent: long rows ``EVENT_FIELDS`` of the served recent events (per user and source,
            the ``cap`` most recent of everything counted, or all of them if fewer).
        events: the pushed events (as :func:`pushed_events` returns them: ``ts`` UTC, whole seconds).
        caps: the build's caps, which tell a full window from a complete one.

    Returns:
        The unseen events, each once. An event is seen if its key is in ``recent``, or if its
        source's window is full and the event is not newer than the window's oldest event.
    """
    key = ["user_id", "ts", "source", "text"]
    ev = events.drop_duplicates(key)
    ev = ev.merge(recent[key].drop_duplicates(), on=key, how="left", indicator="where")
    ev = ev[ev["where"] == "left_only"].drop(columns="where")
    window = recent.groupby(["user_id", "source"], as_index=False).agg(
        size=("ts", "size"), oldest=("ts", "min")
    )
    full = window[window["size"] >= caps.of(window["source"])]
    ev = ev.merge(full[["user_id", "source", "oldest"]], on=["user_id", "source"], how="left")
    maybe_counted = ev["ts"] <= ev["oldest"]  # False where the window is not full (NaT)
    return ev.loc[~maybe_counted, EVENT_FIELDS].reset_index(drop=True)


def served_long(current: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Served list columns as long rows, renamed by ``names`` (times UTC, counts int64)."""
    long = current[["user_id", *names]].explode(list(names)).rename(columns=names)
    long = long.dropna(subset=["source"]).reset_index(drop=True)
    for col in {"ts", "last_ts"} & set(long.columns):
        long[col] = pd.to_datetime(long[col]).dt.tz_localize(UTC).astype("datetime64[us, UTC]")
    return long.astype({"count": "int64"}) if "count" in long else long


def pushed_events(events: pd.DataFrame) -> pd.DataFrame:
    missing = sorted(set(EVENT_FIELDS) - {"value"} - set(events.columns))
    if missing:
        raise QAnchorError(f"pushed events lack column(s) {missing}; expected {EVENT_FIELDS}")
    ev = events.assign(value=events["value"] if "value" in events else float("nan"))[EVENT_FIELDS]
    # The online store keeps event times in whole seconds (Feast's UnixTimestamp): floored
    # here, a redelivered sub-second event matches its stored copy and changes nothing.
    ts = pd.to_datetime(ev["ts"], utc=True).dt.floor("s").astype("datetime64[us, UTC]")
    return ev.assign(user_id=ev["user_id"].astype(str), ts=ts)
