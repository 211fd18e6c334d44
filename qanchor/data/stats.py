"""Vectorised per-user statistics of an event log, shared by snapshots and UserU pairs.

Everything here is a pandas groupby over the whole log; per-user Python work happens only on the
small aggregated tables, so a build of tens of thousands of users stays in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

# Time-of-day buckets by UTC hour; named so answers read naturally.
TOD_BUCKETS = (("night", 0, 6), ("morning", 6, 12), ("afternoon", 12, 18), ("evening", 18, 24))


def action_keys(text: pd.Series, words: int) -> pd.Series:
    """Normalise event texts to short "action" keys: lowercase, no digits/punctuation, N words.

    Amounts, dates and ids make most raw texts unique; dropping them groups events that are the
    same kind of action ("paid at freshmart groceries") so we can count and rank them.
    Computed on unique texts only, since logs repeat texts heavily.
    """
    uniq = pd.Series(text.unique())
    norm = uniq.str.lower().str.replace(r"[\d\W_]+", " ", regex=True).str.split()
    keys = norm.map(lambda ws: " ".join(ws[:words]))
    mapping = dict(zip(uniq, keys, strict=True))
    return text.map(mapping).astype(object)


def action_table(events: pd.DataFrame) -> pd.DataFrame:
    """Counts, value sums and counts, last time per (user, source, action), most frequent first."""
    key = events["action"].where(events["action"] != "", events["source"])
    grouped = events.assign(action=key).groupby(["user_id", "source", "action"], sort=False)
    table = grouped.agg(
        n=("ts", "size"),
        value_sum=("value", "sum"),
        value_n=("value", "count"),
        last_ts=("ts", "max"),
    )
    table = table.reset_index()
    return table.sort_values(
        ["user_id", "n", "last_ts", "action"], ascending=[True, False, False, True], kind="stable"
    ).reset_index(drop=True)


def source_counts(events: pd.DataFrame) -> pd.DataFrame:
    """Wide table user_id x source of event counts (0 where none)."""
    return events.groupby(["user_id", "source"]).size().unstack(fill_value=0)


def count_bins(counts: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per-source tercile edges of non-zero counts: the population's light/moderate/heavy cut."""
    edges = {}
    for src in counts.columns:
        nz = counts[src][counts[src] > 0]
        if len(nz) == 0:
            continue
        lo, hi = np.quantile(nz, [1 / 3, 2 / 3])
        edges[src] = (float(lo), float(hi))
    return edges


def bin_label(n: int, edges: tuple[float, float] | None) -> str:
    """'light', 'moderate' or 'heavy' relative to the population's terciles."""
    if edges is None:
        return "some"
    lo, hi = edges
    return "light" if n <= lo else ("moderate" if n <= hi else "heavy")


def iter_groups(df: pd.DataFrame, key: str = "user_id") -> Iterator[tuple[str, list[tuple]]]:
    """Yield (key, rows as tuples) for a frame sorted by ``key``, in one linear pass."""
    if df.empty:
        return
    keys = df[key].to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    rows = list(df.itertuples(index=False, name=None))
    for s, e in zip(starts, ends, strict=True):
        yield keys[s], rows[s:e]


class Action(NamedTuple):
    """One kind of action of a user in one source (see :func:`action_keys`).

    Attributes:
        name: The action key.
        n: Number of events.
        total: Sum of their non-null values (0.0 without any).
        valued: Number of events with a value, so ``total / valued`` is a mean (e.g. a rating).
    """

    name: str
    n: int
    total: float
    valued: int


@dataclass
class UserStats:
    """What the pair generators may say about one user: derived only from that user's log."""

    user_id: str
    counts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, list[Action]] = field(default_factory=dict)
    active_days: int = 0
    days_since_last: float | None = None
    tod_share: dict[str, float] = field(default_factory=dict)
    weekend_share: float = 0.0
    trend: tuple[int, int] = (0, 0)
    recent: list[tuple[str, str, int]] = field(default_factory=list)
    profile: dict[str, object] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def user_stats(
    events: pd.DataFrame, cutoff: pd.Timestamp, recent_days: int, top_k: int,
    start: pd.Timestamp | None = None,
) -> dict[str, UserStats]:  # fmt: skip
    """Compute :class:`UserStats` for every user in ``events`` (needs an ``action`` column).

    ``start``: the window's first time, from which activity trends count thirds (default: the
    first event here; pass the whole window's when ``events`` hold only some of the users).
    """
    stats: dict[str, UserStats] = {}
    # Timestamps left out: iterating them is slow.
    cols = ["user_id", "source", "action", "n", "value_sum", "value_n"]
    for uid, rows in iter_groups(action_table(events)[cols]):
        st = stats.setdefault(uid, UserStats(uid))
        for _, src, action, n, vsum, vn in rows:
            st.counts[src] = st.counts.get(src, 0) + int(n)
            lst = st.actions.setdefault(src, [])
            if len(lst) < top_k:
                lst.append(Action(action, int(n), float(vsum), int(vn)))
    if not stats:  # e.g. an empty future window: the time stats below need a timestamp
        return stats
    _add_time_stats(events, cutoff, stats, start)
    _add_recent(events, cutoff, recent_days, top_k, stats)
    return stats


def _add_time_stats(
    events: pd.DataFrame, cutoff: pd.Timestamp, stats: dict[str, UserStats],
    start: pd.Timestamp | None = None,
) -> None:  # fmt: skip
    ts = events["ts"]
    hour, day = ts.dt.hour, ts.dt.floor("D")
    bucket = pd.cut(
        hour, [b[1] for b in TOD_BUCKETS] + [24], right=False, labels=[b[0] for b in TOD_BUCKETS]
    )
    tod = events.groupby(["user_id", bucket], observed=False).size().unstack(fill_value=0)
    tod = tod.div(tod.sum(axis=1).clip(lower=1), axis=0)
    weekend = (ts.dt.day_of_week >= 5).groupby(events["user_id"]).mean()
    active = day.groupby(events["user_id"]).nunique()
    last = ts.groupby(events["user_id"]).max()
    # Activity trend: first third of the history window against the last third.
    start = ts.min() if start is None else start
    frac = (ts - start) / max(cutoff - start, pd.Timedelta(seconds=1))
    early = (frac < 1 / 3).groupby(events["user_id"]).sum()
    late = (frac >= 2 / 3).groupby(events["user_id"]).sum()
    # Plain dicts: per-user .loc lookups on 20k users would dominate the build time.
    tod_d = {
        uid: {str(k): float(v) for k, v in row.items()} for uid, row in tod.to_dict("index").items()
    }
    weekend_d, active_d = weekend.to_dict(), active.to_dict()
    since_d = ((cutoff - last) / pd.Timedelta(days=1)).to_dict()
    early_d, late_d = early.to_dict(), late.to_dict()
    for uid, st in stats.items():
        st.tod_share = tod_d.get(uid, {})
        st.weekend_share = float(weekend_d.get(uid, 0.0))
        st.active_days = int(active_d.get(uid, 0))
        st.days_since_last = float(since_d[uid]) if uid in since_d else None
        st.trend = (int(early_d.get(uid, 0)), int(late_d.get(uid, 0)))


def _add_recent(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    recent_days: int,
    top_k: int,
    stats: dict[str, UserStats],
) -> None:
    recent = events[events["ts"] >= cutoff - pd.Timedelta(days=recent_days)]
    for uid, rows in iter_groups(action_table(recent)[["user_id", "source", "action", "n"]]):
        stats[uid].recent = [(src, action, int(n)) for _, src, action, n in rows[:top_k]]
