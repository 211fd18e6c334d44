"""A pushed user's activity aggregates, brought forward with its new events.

The build computes the aggregates (``qanchor.data.snapshots.aggregates``) from the whole history;
a push only has the stored row and the new events, so it updates the row incrementally:

- ``<source>__count``, ``total__count``, ``<source>__value_sum`` add the new events exactly;
  ``<source>__value_mean`` is re-weighted (the stored mean's event count is recovered from
  ``value_sum / value_mean``);
- the row moves to the push's time: every ``days_since_last`` is re-based on it, and the pushed
  sources' ones count from their newest event;
- ``count_30d`` adds the new events but does not age out older ones, and ``active_days`` adds the
  new events' days that are not among the days of the recent events the row serves: both are
  approximate until the next build and materialisation recompute them from the log.

Served aggregates thus never disagree with served events about whether a user was active.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qanchor.data.snapshots import source_column


def updated_activity(
    stored: pd.DataFrame, new: pd.DataFrame, recent: pd.DataFrame, times: pd.DataFrame,
    before: pd.DataFrame,
) -> pd.DataFrame:  # fmt: skip
    """Aggregate rows of the users in ``times``, updated with their ``new`` events.

    Args:
        stored: the served aggregates (``user_id``, ``snapshot_ts``, the aggregate columns);
            a user without a stored row (a new user) starts from zeros.
        new: the users' unseen events (``user_id``, ``ts``, ``source``, ``value``).
        recent: the served recent events before the push (long rows with ``ts``, ``source``).
        times: ``user_id``, ``snapshot_ts``: the time of each user's new row.
        before: ``user_id``, ``snapshot_ts``: the time of each user's served row (the stored
            aggregates are relative to it; NaT for a new user).
    """
    rows = []
    cols = [c for c in stored.columns if c not in ("user_id", "snapshot_ts")]
    by_user = stored.drop_duplicates("user_id").set_index("user_id")
    was_at = before.drop_duplicates("user_id").set_index("user_id")["snapshot_ts"]
    for uid, at in zip(
        times["user_id"], pd.to_datetime(times["snapshot_ts"], utc=True), strict=True
    ):
        was = pd.to_datetime(was_at.get(uid), utc=True)
        known = uid in by_user.index and bool(by_user.loc[uid, cols].notna().any())
        row = by_user.loc[uid, cols].astype(float) if known else _empty(cols)
        row = _update(
            row.copy(), new[new["user_id"] == uid], recent[recent["user_id"] == uid], was, at
        )
        rows.append({"user_id": uid, "snapshot_ts": at, **row.to_dict()})
    return pd.DataFrame(rows, columns=["user_id", "snapshot_ts", *cols])


def _empty(cols: list[str]) -> pd.Series:
    """A user with no activity: zero counts, no recency or amounts (as the build writes it)."""
    zero = ("__count", "__count_30d", "__active_days", "__n_sources")
    return pd.Series({c: 0.0 if c.endswith(zero) else np.nan for c in cols}, dtype=float)


def _update(row: pd.Series, new: pd.DataFrame, recent: pd.DataFrame, was, at) -> pd.Series:
    shift = max((at - was) / pd.Timedelta(days=1), 0.0) if pd.notna(was) else 0.0
    for col in [c for c in row.index if c.endswith("__days_since_last")]:
        row[col] = row[col] + shift  # NaN (never active) stays NaN
    recent_days = recent.assign(day=pd.to_datetime(recent["ts"], utc=True).dt.floor("D"))
    seen_days = set(recent_days["day"])
    new = new.assign(ts=pd.to_datetime(new["ts"], utc=True))
    new_days = set()
    for src, ev in new.groupby("source"):
        c = source_column(src)
        if f"{c}__count" not in row.index:
            continue  # a source the build did not know has no aggregate columns
        days = set(ev["ts"].dt.floor("D"))
        fresh_days = days - set(recent_days.loc[recent_days["source"] == src, "day"])
        vals = ev["value"].dropna().astype(float)
        row[f"{c}__count"] += len(ev)
        row[f"{c}__count_30d"] += int(((at - ev["ts"]) <= pd.Timedelta(days=30)).sum())
        row[f"{c}__active_days"] += len(fresh_days)
        since = (at - ev["ts"].max()) / pd.Timedelta(days=1)
        old = row[f"{c}__days_since_last"]
        row[f"{c}__days_since_last"] = since if np.isnan(old) else min(old, since)
        if len(vals):
            s_old, m_old = row[f"{c}__value_sum"], row[f"{c}__value_mean"]
            n_old = (
                s_old / m_old if np.isfinite(s_old) and np.isfinite(m_old) and m_old != 0 else 0.0
            )
            s_new = (0.0 if np.isnan(s_old) else s_old) + vals.sum()
            row[f"{c}__value_sum"] = s_new
            row[f"{c}__value_mean"] = s_new / (n_old + len(vals))
        new_days |= days
    if "total__count" in row.index:
        row["total__count"] += len(new)
        row["total__active_days"] += len(new_days - seen_days)
        sinces = [
            row[c]
            for c in row.index
            if c.endswith("__days_since_last") and not c.startswith("total__")
        ]
        sinces = [x for x in sinces if not np.isnan(x)]
        row["total__days_since_last"] = min(sinces) if sinces else np.nan
        counts = [
            row[c] for c in row.index if c.endswith("__count") and not c.startswith("total__")
        ]
        row["total__n_sources"] = float(sum(x > 0 for x in counts))
    return row
