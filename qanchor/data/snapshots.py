"""Per-user snapshots at the cutoff: capped recent events per source, the whole-history bag,
activity aggregates.

A snapshot is what the model reads for a user and what the feature store serves: one row per user,
with the events as parallel lists (list-typed features), ordered by source then time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

# The list columns of a snapshot row: the capped recent events and the whole-history bag.
EVENT_COLUMNS = ("event_source", "event_ts", "event_text", "event_value")
BAG_COLUMNS = ("bag_source", "bag_text", "bag_count", "bag_last_ts")


def source_column(source: str) -> str:
    """A column-safe name for a source ("Mini Program" -> "mini_program")."""
    return re.sub(r"\W+", "_", source.strip().lower()).strip("_") or "source"


def cap_events(history: pd.DataFrame, caps: dict[str, int], default_cap: int) -> pd.DataFrame:
    """Keep each user's most recent ``cap`` events per source, ordered by (user, source, ts).

    The paper keeps up to 250/150/150/10/100 events per source; the cap is per source so one
    chatty source cannot crowd the others out of the model's context.
    """
    h = history.sort_values(["user_id", "source", "ts"], kind="stable")
    return keep_recent(h, caps, default_cap).reset_index(drop=True)


def keep_recent(
    events: pd.DataFrame, caps: Mapping[str, int], default_cap: int, source: str = "source"
) -> pd.DataFrame:
    """The last ``cap`` rows of each (``user_id``, ``source``) group, in their order.

    Rows must be in time order within a group (they need not be grouped). The build applies it
    to its sorted history (:func:`cap_events`) and the model to the time-ordered events of
    snapshot rows (``UserTable.from_snapshots``), so both keep the same events.

    Args:
        events: rows with ``user_id`` and the ``source`` column.
        caps: per-source caps; other sources keep ``default_cap``.
        default_cap: the cap of a source not in ``caps``.
        source: the name of the source column.
    """
    rank_from_end = events.groupby(["user_id", source], sort=False).cumcount(ascending=False)
    return events[rank_from_end < source_caps(events[source], caps, default_cap)]


def source_caps(sources: pd.Series, caps: Mapping[str, int], default_cap: int) -> pd.Series:
    """The cap of each source in ``sources``: ``caps[source]``, else ``default_cap``."""
    return sources.map(caps).fillna(default_cap).astype(int)


def snapshot_lists(capped: pd.DataFrame, users: pd.Index, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One row per user with list columns event_source/event_ts/event_text/event_value.

    ``capped`` must be sorted by user_id (as :func:`cap_events` returns it). Users without
    history get empty lists, not nulls: "no events" is a fact, not missing data.
    """
    # Event times in microseconds (naive UTC): Feast turns datetime64[ns] list elements into
    # integer nanoseconds (ndarray.tolist) when it materialises them; [us] gives datetimes.
    ts = capped["ts"].dt.tz_localize(None).astype("datetime64[us]")
    columns = {"event_source": capped["source"], "event_ts": ts, "event_text": capped["text"],
               "event_value": capped["value"]}  # fmt: skip
    out = {"user_id": users.to_numpy(), "snapshot_ts": cutoff}
    return pd.DataFrame(out | _list_columns(capped["user_id"], users, columns))


def bag_lists(history: pd.DataFrame, users: pd.Index, max_texts: int) -> pd.DataFrame:
    """Per user, the whole history as distinct (source, text) pairs with their counts.

    List columns ``bag_source``, ``bag_text``, ``bag_count``, ``bag_last_ts``: what the
    model's coarse tokens and bag-of-events channel read (every history event, not only the
    capped recent ones), in a form whose size grows with a user's distinct texts rather than
    their events. At most ``max_texts`` texts per user and source are kept (:func:`cap_bag`).
    """
    return bag_snapshot(cap_bag(bag_counts(history), max_texts), users)


def bag_counts(events: pd.DataFrame) -> pd.DataFrame:
    """Long bag rows ``user_id, source, text, count, last_ts`` of events (``ts`` UTC).

    ``last_ts`` is floored to whole seconds, the resolution the online store keeps: a push
    re-orders a served bag by the same keys the build ordered it by (:func:`cap_bag`).
    """
    g = events.groupby(["user_id", "source", "text"], sort=False, observed=True)
    bag = g["ts"].agg(count="size", last_ts="max").reset_index()
    return bag.assign(count=bag["count"].astype(np.int64), last_ts=bag["last_ts"].dt.floor("s"))


def cap_bag(bag: pd.DataFrame, max_texts: int) -> pd.DataFrame:
    """Order long bag rows and keep the first ``max_texts`` per user and source.

    The order, per (user, source): count descending, then last time descending, then text. It
    is total, so the build (:func:`bag_lists`) and a push (``qanchor.features.push``) that hold
    the same rows produce the same lists. Rows come out grouped by user.
    """
    bag = bag.sort_values(["user_id", "source", "count", "last_ts", "text"],
                          ascending=[True, True, False, False, True], kind="stable")  # fmt: skip
    return bag[bag.groupby(["user_id", "source"], sort=False).cumcount() < max_texts]


def bag_snapshot(bag: pd.DataFrame, users: pd.Index) -> pd.DataFrame:
    """``user_id`` and the ``bag_*`` list columns of long bag rows grouped by user (in order)."""
    last = bag["last_ts"].dt.tz_localize(None).astype("datetime64[us]")  # as snapshot_lists
    columns = {"bag_source": bag["source"], "bag_text": bag["text"],
               "bag_count": bag["count"].astype(np.int64), "bag_last_ts": last}  # fmt: skip
    return pd.DataFrame(
        {"user_id": users.to_numpy()} | _list_columns(bag["user_id"], users, columns)
    )


def _list_columns(
    user_of_row: pd.Series, users: pd.Index, columns: dict[str, pd.Series]
) -> dict[str, pd.Series]:
    """Cut flat columns into one list per user of ``users`` (Arrow list arrays by offsets,
    not a Python groupby-agg per user); rows must be grouped by user, in any user order."""
    import pyarrow as pa

    pos = users.get_indexer(user_of_row.to_numpy())
    if (pos < 0).any():
        raise ValueError("rows contain users outside `users`")
    counts = np.bincount(pos, minlength=len(users))
    # Reorder rows to follow `users` order; stable keeps the order within a user.
    order = np.argsort(pos, kind="stable")
    offsets = pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32))
    return {
        name: pa.ListArray.from_arrays(offsets, pa.array(col.to_numpy()[order])).to_pandas()
        for name, col in columns.items()
    }


def by_users(events: pd.DataFrame, users: pd.Index, chunk: int):
    """``(users, their events)`` for ``chunk`` users of ``users`` at a time, in order; events of
    other users are in no chunk. Each user's events keep their order."""
    # An unknown user's index, -1, floors to chunk -1: in no chunk.
    at = users.get_indexer(events["user_id"].to_numpy()) // chunk
    for k, a in enumerate(range(0, len(users), chunk)):
        yield users[a : a + chunk], events[at == k]


def aggregates(
    history: pd.DataFrame, users: pd.Index, sources: list[str], cutoff: pd.Timestamp
) -> pd.DataFrame:
    """Activity aggregates per user and source (counts, recency, amounts), numeric and dense."""
    h = history.assign(day=history["ts"].dt.floor("D"))
    days_since = (cutoff - h["ts"]) / pd.Timedelta(days=1)
    h = h.assign(days_since=days_since, recent30=days_since <= 30)
    g = h.groupby(["user_id", "source"])
    per = pd.DataFrame(
        {
            "count": g.size(),
            "count_30d": g["recent30"].sum(),
            "active_days": g["day"].nunique(),
            "days_since_last": g["days_since"].min(),
            "value_sum": g["value"].sum(min_count=1),
            "value_mean": g["value"].mean(),
        }
    )
    wide = per.unstack("source")
    wide.columns = [f"{source_column(src)}__{stat}" for stat, src in wide.columns]
    expected = [f"{source_column(s)}__{stat}" for s in sources for stat in per.columns]
    wide = wide.reindex(index=users, columns=expected)
    counts = [c for c in wide.columns if c.endswith(("__count", "__count_30d", "__active_days"))]
    wide[counts] = wide[counts].fillna(0)
    tot = h.groupby("user_id")
    wide["total__count"] = tot.size().reindex(users).fillna(0)
    wide["total__active_days"] = tot["day"].nunique().reindex(users).fillna(0)
    wide["total__days_since_last"] = tot["days_since"].min().reindex(users)
    wide["total__n_sources"] = tot["source"].nunique().reindex(users).fillna(0)
    wide = wide.astype(np.float64)
    wide.index.name = "user_id"
    wide.insert(0, "snapshot_ts", cutoff)
    return wide.reset_index()
