"""Stream ingestion: a user's new events update the online event history; serving is told.

    result = push_events(cfg, new_events, on_stale=[prefix_invalidator(embedder.cache)])
    result.stale      # users whose served features changed: their cached prefixes are stale
    result.versions   # the new feature version of every pushed user

The event history is a list feature (the capped recent events per source), so a push is a
read-modify-write of the user's online row: read it, add the new events, drop exact duplicates
(a stream may deliver an event twice), re-apply the build's per-source caps and push the row
through the ``user_events_push`` source. The offline side is not written: the raw event log is
the offline truth, and the next build and materialisation reproduce these rows from it.

Invalidation has two layers. The inference engine's cache key already holds a hash of the
user's inputs, so once serving reloads a user's features it can never hit a stale entry; the
hooks additionally evict the superseded entries at once instead of waiting for LRU eviction.
A user counts as stale only if its features actually changed (a re-delivered event does not).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from qanchor.errors import QAnchorError
from qanchor.features.config import FeatureStoreConfig
from qanchor.features.store import online_snapshots, store

PUSH_SOURCE = "user_events_push"
EVENT_FIELDS = ["user_id", "ts", "source", "text", "value"]

StaleHook = Callable[[set[str]], Any]


@dataclass
class PushResult:
    """What a push changed.

    Attributes:
        stale: users whose served features changed; their cached prefixes are stale.
        versions: the feature version (:meth:`UserFeatures.versions`) of every pushed user.
        events: number of events received.
    """

    stale: set[str] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)
    events: int = 0


def prefix_invalidator(cache: Any) -> StaleHook:
    """A hook evicting stale users from an inference ``PrefixCache`` (keys start with user id)."""
    return lambda users: cache.invalidate(lambda key: key[0] in users)


def push_events(
    cfg: FeatureStoreConfig, events: pd.DataFrame, on_stale: Iterable[StaleHook] = ()
) -> PushResult:
    """Append new events (contract columns of events.parquet) to their users' online history.

    Args:
        cfg: the feature store (applied and materialised).
        events: ``user_id``, ``ts``, ``source``, ``text`` and optionally ``value``.
        on_stale: called once with the set of stale users (if any) after the push.

    Returns:
        The stale users and the new feature versions.
    """
    from feast.data_source import PushMode

    ev = _events(events)
    if ev.empty:
        return PushResult()
    users = sorted(ev["user_id"].unique())
    before = online_snapshots(cfg, users)
    rows = merged_history(before.snapshots, ev, *_caps(cfg))
    store(cfg).push(PUSH_SOURCE, rows, to=PushMode.ONLINE)
    old, new = before.versions(), online_snapshots(cfg, users).versions()
    stale = {u for u in users if new[u] != old[u]}
    if stale:
        for hook in on_stale:
            hook(stale)
    return PushResult(stale, new, len(ev))


def merged_history(
    current: pd.DataFrame, events: pd.DataFrame, caps: dict[str, int], default_cap: int
) -> pd.DataFrame:
    """The event-history rows after ``events``: snapshot lists, capped per source as in the build.

    ``snapshot_ts`` moves strictly forward (at least a second past the previous row, never
    before the newest event or now): online stores keep the newer row per user by this time,
    at one-second resolution, and an equal time would drop the push.
    """
    from qanchor.data.snapshots import cap_events, snapshot_lists

    names = {
        "event_source": "source",
        "event_ts": "ts",
        "event_text": "text",
        "event_value": "value",
    }
    long = current[["user_id", *names]].explode(list(names)).rename(columns=names)
    long = long.dropna(subset=["source"])[EVENT_FIELDS]
    long["ts"] = pd.to_datetime(long["ts"]).dt.tz_localize(UTC)
    both = pd.concat([long, events], ignore_index=True).astype({"value": "float64"})
    both = both.drop_duplicates(["user_id", "ts", "source", "text"])
    users = pd.Index(current["user_id"], name="user_id")
    rows = snapshot_lists(cap_events(both, caps, default_cap), users, pd.NaT)
    previous = pd.to_datetime(current["snapshot_ts"], utc=True).reset_index(drop=True)
    newest = events.groupby("user_id")["ts"].max().reindex(users).reset_index(drop=True)
    now = pd.Timestamp(datetime.now(UTC)).floor("s")
    candidates = pd.DataFrame({"after_previous": previous + pd.Timedelta(seconds=1),
                               "newest_event": newest, "now": now})  # fmt: skip
    rows["snapshot_ts"] = candidates.max(axis=1)  # NaT (an unknown user) is skipped
    return rows


def _events(events: pd.DataFrame) -> pd.DataFrame:
    missing = sorted(set(EVENT_FIELDS) - {"value"} - set(events.columns))
    if missing:
        raise QAnchorError(f"pushed events lack column(s) {missing}; expected {EVENT_FIELDS}")
    ev = events.assign(value=events["value"] if "value" in events else float("nan"))[EVENT_FIELDS]
    # The online store keeps event times in whole seconds (Feast's UnixTimestamp): floored
    # here, a redelivered sub-second event matches its stored copy and changes nothing.
    ts = pd.to_datetime(ev["ts"], utc=True).dt.floor("s")
    return ev.assign(user_id=ev["user_id"].astype(str), ts=ts)


def _caps(cfg: FeatureStoreConfig) -> tuple[dict[str, int], int]:
    """The build's per-source caps, so a pushed history is shaped like a built snapshot."""
    build = json.loads((Path(cfg.data) / "manifest.json").read_text())["config"]
    return dict(build.get("source_caps") or {}), int(build["max_events_per_source"])
