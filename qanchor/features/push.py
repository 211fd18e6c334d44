"""Stream ingestion: a user's new events update the online event history; serving is told.

    result = push_events(cfg, new_events, on_stale=[prefix_invalidator(embedder.cache)])
    result.stale      # users whose served features changed: their cached prefixes are stale
    result.versions   # the new feature version of every pushed user

The event history is a list feature: the capped recent events per source and the whole-history
bag (distinct texts with counts and last times). A push is a read-modify-write of the user's online row: read
it, keep the events not seen before (:func:`~qanchor.features.history_merge.unseen_events`), add them to the recent lists and
to the bag counts, re-apply the build's caps and ordering (the same functions the build uses,
:mod:`qanchor.data.snapshots`) and push the row through the ``user_events_push`` source. The
offline side is not written: the raw event log is the offline truth, and the next build and
materialisation reproduce these rows from it, correcting what a push cannot know:

- events that agree on (user, ts to the second, source, text) are one event to a push (a
  stream redelivers this way); the build drops only exact duplicates (value included, ts at
  full resolution), so two distinct events equal on those four are both counted at the next build;
- an event not newer than the oldest recent event of a full window (its source holds the cap)
  and not in it is taken as already counted: it may be a redelivery of an event that fell out
  of the window. A genuinely late event that old is counted at the next build;
- a text the bag's cap dropped restarts at the count of its pushed events.

Invalidation has two layers. The inference engine's cache key already holds a hash of the
user's inputs, so once serving reloads a user's features it can never hit a stale entry; the
hooks additionally evict the superseded entries at once instead of waiting for LRU eviction.
A user counts as stale only if its features actually changed (a re-delivered event does not,
and its row is not even rewritten).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from qanchor.errors import QAnchorError
from qanchor.features.config import FeatureStoreConfig
from qanchor.features.feast_store import online_snapshots, store
from qanchor.features.history_merge import (
    RECENT_NAMES,
    build_caps,
    merged_history,
    pushed_events,
    served_long,
    unseen_events,
)

PUSH_SOURCE = "user_events_push"
ACTIVITY_SOURCE = "user_activity_push"

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


MAX_SKEW = timedelta(minutes=5)  # how far ahead of this machine's clock an event may be dated


class UnknownUsersError(QAnchorError):
    """A push for users the store has never seen, without ``create``."""

    def __init__(self, users: list[str]) -> None:
        super().__init__(f"unknown user(s) {users[:10]}: push with create=True to add new users")
        self.users = users


class FutureEventsError(QAnchorError):
    """A push with events dated after now + the allowed clock skew."""


def push_events(
    cfg: FeatureStoreConfig, events: pd.DataFrame, on_stale: Iterable[StaleHook] = (),
    create: bool = False, max_skew: timedelta = MAX_SKEW, now: datetime | None = None,
) -> PushResult:  # fmt: skip
    """Append new events (contract columns of events.parquet) to their users' online history.

    Nothing is written unless every event passes the checks below.

    Args:
        cfg: the feature store (applied and materialised).
        events: ``user_id``, ``ts``, ``source``, ``text`` and optionally ``value``.
        on_stale: called once with the set of stale users (if any) after the push.
        create: also accept users the store has no history for (new users); without it such a
            push is refused, so a mistyped id cannot create a user that ``/embed`` then serves.
        max_skew: events dated later than ``now + max_skew`` are refused (a clock or unit bug
            upstream; they would sort before every real event forever).
        now: the current time (default: this machine's clock, UTC).

    Returns:
        The stale users and the new feature versions.

    Raises:
        FutureEventsError: an event is dated after ``now + max_skew``.
        UnknownUsersError: a user is unknown and ``create`` is off.
    """

    ev = pushed_events(events)
    if ev.empty:
        return PushResult()
    limit = pd.Timestamp(now or datetime.now(UTC)) + max_skew
    late = ev[ev["ts"] > limit]
    if len(late):
        raise FutureEventsError(f"{len(late)} event(s) dated after now + {max_skew} ({limit}), "
                                f"e.g. user {late['user_id'].iloc[0]} at {late['ts'].iloc[0]}")  # fmt: skip
    users = sorted(ev["user_id"].unique())
    with push_lock(cfg):  # a read-modify-write: another replica's push must not interleave
        return _push(cfg, ev, users, on_stale, create)


def _push(
    cfg: FeatureStoreConfig, ev: pd.DataFrame, users: list[str], on_stale: Iterable[StaleHook],
    create: bool,
) -> PushResult:  # fmt: skip
    from feast.data_source import PushMode

    before = online_snapshots(cfg, users)
    snaps = before.snapshots
    known = set(snaps.loc[snaps["snapshot_ts"].notna(), "user_id"].astype(str))
    if not create and (unknown := [u for u in users if u not in known]):
        raise UnknownUsersError(unknown)
    caps = build_caps(cfg)
    recent = served_long(before.snapshots, RECENT_NAMES)
    new = unseen_events(recent, ev, caps)
    rows = merged_history(before.snapshots, ev, caps, new)
    if rows.empty:  # nothing new: the stored rows stand, nobody is stale
        return PushResult(set(), before.versions(), len(ev))
    fs = store(cfg)
    fs.push(PUSH_SOURCE, rows, to=PushMode.ONLINE)
    if before.aggregates is not None:
        # The activity aggregates follow the events (same row time): see qanchor.features.activity.
        from qanchor.features.activity import updated_activity

        times = rows[["user_id", "snapshot_ts"]]
        activity = updated_activity(before.aggregates, new, recent, times, before.snapshots)
        fs.push(ACTIVITY_SOURCE, activity, to=PushMode.ONLINE)
    old, new = before.versions(), online_snapshots(cfg, users).versions()
    stale = {u for u in users if new[u] != old[u]}
    if stale:
        for hook in on_stale:
            hook(stale)
    return PushResult(stale, new, len(ev))


@contextmanager
def push_lock(cfg: FeatureStoreConfig, timeout: float = 60.0) -> Iterator[None]:
    """Exclusive across processes and replicas for the duration of one push.

    With the Redis online store a Redis lock (every replica reaches the same server); with the
    embedded SQLite store a file lock beside it (replicas share its directory). Pushes are short
    (one read and one write per request), so one lock for the whole store costs little.
    """
    if cfg.online_store == "redis":
        import redis

        from qanchor.features.config import _redis_url

        host_port, *opts = _redis_url(cfg, "").split(",")
        host, _, port = host_port.partition(":")
        kw = dict(o.split("=", 1) for o in opts if "=" in o)
        client = redis.Redis(host=host, port=int(port or 6379), db=int(kw.get("db", 0)),
                             password=kw.get("password"))  # fmt: skip
        with client.lock("qanchor:push", timeout=timeout, blocking_timeout=timeout):
            yield
        return
    from filelock import FileLock

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cfg.state_dir / "push.lock"), timeout=timeout):
        yield
