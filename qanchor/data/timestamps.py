"""Event timestamps: parsing to UTC nanoseconds, which dates a log cannot hold, ordering by time.

The loader parses every ``ts`` with :func:`parse_ts`; the contract checks use :func:`beyond_ns`
on the Arrow column and :func:`out_of_range` to give placeholder dates their own quarantine reason;
:func:`sort_rows` puts events in (user, time) order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

# The span pandas' nanosecond timestamps hold (years 1677-2262), to whole seconds, in UTC: the
# Arrow check (:func:`beyond_ns`) and the conversion (:func:`as_ns`) share it.
NS_SPAN = (pd.Timestamp.min.ceil("s").tz_localize("UTC"), pd.Timestamp.max.floor("s").tz_localize("UTC"))  # fmt: skip


def beyond_ns(column: pa.ChunkedArray) -> bool:
    """Whether a timestamp/date column holds a value pandas' nanoseconds cannot."""
    import pyarrow.compute as pc

    t = column.type
    if not (pa.types.is_timestamp(t) or pa.types.is_date(t)) or column.null_count == len(column):
        return False
    unit = pa.timestamp("s", t.tz) if pa.types.is_timestamp(t) else pa.timestamp("s")
    seconds = pc.cast(pc.cast(column, unit, safe=False), pa.int64())
    lo, hi = (t.value // 10**9 for t in NS_SPAN)
    mm = pc.min_max(seconds)
    return mm["min"].as_py() < lo or mm["max"].as_py() > hi


# Earliest event time taken as real: older dates in a behaviour log are typos or placeholders.
EARLIEST_TS = pd.Timestamp("1900-01-01", tz="UTC")


def out_of_range(raw: pd.Series, ts: pd.Series) -> pd.Series:
    """Mask of events dated before :data:`EARLIEST_TS` or beyond what a timestamp holds.

    The parsers turn a date past 2262 (``9999-12-31``) or before 1677 (``0001-01-01``) into
    NaT like a typo, but such a row is a placeholder date, not garbage: it gets its own
    quarantine reason. Only the unparsed values are re-read (one by one, there are few).
    """
    import datetime as dt

    early = (ts < EARLIEST_TS).fillna(False)
    failed = ts.isna() & raw.notna()
    if failed.any():

        def is_date(value: object) -> bool:
            try:
                dt.datetime.fromisoformat(str(value).strip())
            except ValueError:
                return False
            return True

        early.loc[failed] = [is_date(x) for x in raw[failed]]
    return early.astype(bool)


def parse_ts(raw: pd.Series) -> pd.Series:
    """Parse timestamps to UTC; unparseable or null values become NaT.

    Naive timestamps are taken as UTC. Strings try, in turn: Arrow's ISO-8601 cast (about 10x
    faster, but all-or-nothing), pandas' ISO-8601 parser, and for the values that still fail
    the slow per-value parser, so other formats parse too.
    """
    if not pd.api.types.is_datetime64_any_dtype(raw):
        raw = _arrow_iso(raw)
    if pd.api.types.is_datetime64_any_dtype(raw):
        tz = getattr(raw.dtype, "tz", None)
        return as_ns(raw.dt.tz_localize("UTC") if tz is None else raw.dt.tz_convert("UTC"))
    ts = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
    failed = ts.isna()
    # Null or blank values stay NaT without the slow parser.
    retry = failed & ~(raw.isna() | raw.str.strip().eq("")) if failed.any() else failed
    if retry.any():
        ts.loc[retry] = pd.to_datetime(raw[retry], format="mixed", utc=True, errors="coerce")
    return as_ns(ts)


def as_ns(ts: pd.Series) -> pd.Series:
    """UTC nanosecond timestamps; values that unit cannot hold become NaT.

    Arrow hands pandas microseconds, in which year 9999 fits; every later step (cutoff, windows,
    ticks) works in nanoseconds, so such a value would crash the build far from its row. As NaT
    it is quarantined (:func:`out_of_range` names the reason).
    """
    if getattr(ts.dtype, "unit", "ns") == "ns":
        return ts
    lo, hi = NS_SPAN
    return ts.where((ts >= lo) & (ts <= hi)).astype("datetime64[ns, UTC]")


def _arrow_iso(raw: pd.Series) -> pd.Series:
    """Parsed timestamps if every string is ISO-8601 with (or every one without) an offset."""
    arr = pa.array(raw, type=pa.string(), from_pandas=True)
    for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
        try:
            return pd.Series(arr.cast(target).to_pandas(), index=raw.index, name=raw.name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # not this form; the pandas parsers below handle any mix
    return raw


def ts_int(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 ticks (NaT = min int64) for fast hashing and sorting."""
    return ts.dt.tz_convert(None).to_numpy().view(np.int64)


def sort_keys(user_id: pd.Series, ts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys (rank of the user string, ts ticks) that sort far faster than strings."""
    return pd.factorize(user_id, sort=True)[0], ts_int(ts)


def sort_rows(keys: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Positions ``rows`` reordered by (user_id, ts); stable, so ties keep file order."""
    if len(rows) == 0:
        return rows
    rank, ticks = keys[0][rows], keys[1][rows] - keys[1][rows].min()

    def fits() -> bool:
        return (int(rank.max()) + 1) * (int(ticks.max()) + 1) < 2**63

    # ns ticks rarely carry sub-second detail; dropping all-zero digits lets one key fit.
    while not fits() and ticks.any() and not (ticks % 1000).any():
        ticks = ticks // 1000
    if fits():  # one combined int64 key sorts ~3x faster than np.lexsort on two keys
        return rows[
            np.argsort(rank.astype(np.int64) * (int(ticks.max()) + 1) + ticks, kind="stable")
        ]
    return rows[np.lexsort((ticks, rank))]
