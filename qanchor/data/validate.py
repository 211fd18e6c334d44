"""Checks of the input contract: fatal ones raise ContractError, recoverable ones name a reason.

Types are judged on the parquet (Arrow) schema rather than on pandas dtypes: the Arrow type is
exact and the same under pandas 2 (strings as ``object``) and pandas 3 (strings as ``str``), so
an int ``user_id`` or a list-valued profile column is caught before any conversion hides it.
Every check is vectorised; the only Python loops run over columns or over <= 5 example rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from qanchor.data import contract as c
from qanchor.data.timestamps import beyond_ns, out_of_range
from qanchor.errors import ContractError

MAX_EXAMPLES = 5


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


# kind -> (accepts the Arrow type?, what the contract wants, how to fix it). An all-null column
# has Arrow type `null` and is accepted everywhere: its nulls are then judged row by row.
_KINDS: dict[str, tuple[Callable[[pa.DataType], bool], str, str]] = {
    "string": (_is_text, "string", "cast it to string"),
    "timestamp": (
        lambda t: pa.types.is_timestamp(t) or pa.types.is_date(t) or _is_text(t),
        "a timestamp or a timestamp string",
        "store a timestamp (epoch numbers: convert with pd.to_datetime(x, unit='s'))",
    ),
    "number": (_is_number, "numeric", "store a float; use null for a missing value"),
    "label": (
        lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t),
        "integer, bool or float holding 0/1",
        "store 0/1 as integers",
    ),
    "feature": (
        lambda t: _is_number(t) or pa.types.is_boolean(t) or _is_text(t),
        "numeric, bool or string (categorical)",
        "flatten or drop this column; supported types are numeric, bool and string",
    ),
}


def format_rows(
    df: pd.DataFrame, mask_or_index: Any, columns: Iterable[str], limit: int = MAX_EXAMPLES
) -> str:
    """Format up to ``limit`` offending rows for a ContractError.

    Args:
        df: A frame whose index is the 0-based row number in the source file.
        mask_or_index: A boolean mask aligned with ``df``, or index labels of the rows.
        columns: Columns to show (ones missing from ``df`` are skipped).
        limit: How many rows to show; the rest are counted.

    Returns:
        One indented line per row, e.g. ``    row 3: user_id='u1', label=2.0``.
    """
    arr = np.asarray(mask_or_index)
    index = df.index[arr] if arr.dtype == bool and len(arr) == len(df) else pd.Index(arr)
    cols = [col for col in columns if col in df.columns]
    lines = [
        f"    row {idx}: " + ", ".join(f"{col}={_show(rec[col])}" for col in cols)
        for idx, rec in df.loc[index[:limit], cols].iterrows()
    ]
    total = len(index)
    if total > limit:
        lines.append(f"    ... and {total - limit} more")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return "null"
    if isinstance(value, np.generic):
        value = value.item()  # numpy 2 reprs scalars as np.int64(7); show the plain value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # labels are read as float; show the 2 the owner wrote, not 2.0
    text = repr(value.isoformat() if isinstance(value, pd.Timestamp) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_table(root: Path, file: str, columns: list[str] | None, required: bool) -> pa.Table | None:
    """Read a parquet file (or a directory of parquet parts) with clear errors.

    Args:
        root: The dataset directory.
        file: The file name in the contract (e.g. ``events.parquet``).
        columns: Contract columns to read when present; None reads all. Required columns
            (``contract.REQUIRED_COLUMNS``) must exist.
        required: Whether a missing file is fatal; if not, a missing file gives None.

    Raises:
        ContractError: The file is missing (and required), unreadable, or lacks a column.
    """
    import pyarrow.dataset as pads

    path = root / file
    if not path.exists():
        if required:
            raise ContractError(file, f"required file not found: expected {path}")
        return None
    try:
        dataset = pads.dataset(path, format="parquet")
        found = [n for n in dataset.schema.names if not n.startswith("__index_level_")]
        missing = [col for col in c.REQUIRED_COLUMNS[file] if col not in found]
        if missing:
            raise ContractError(
                file, f"missing required column(s) {missing}; columns found: {found}"
            )
        wanted = found if columns is None else [col for col in columns if col in found]
        return dataset.to_table(columns=wanted)
    except (OSError, ValueError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
        raise ContractError(file, f"cannot read {path} as parquet: {exc}") from None


def check_types(table: pa.Table, file: str, kinds: dict[str, str]) -> None:
    """Raise ContractError for the first column whose Arrow type does not fit its kind."""
    for col, kind in kinds.items():
        if col not in table.column_names:
            continue
        t = table.schema.field(col).type
        accepts, want, fix = _KINDS[kind]
        if not (pa.types.is_null(t) or accepts(t)):
            head = table.column(col).slice(0, MAX_EXAMPLES).to_pylist()
            rows = "\n".join(f"    row {i}: {col}={_show(x)}" for i, x in enumerate(head))
            raise ContractError(
                file, f"must be {want}, got {_type_name(t)}; {fix}", column=col, rows=rows
            )


def _type_name(t: pa.DataType) -> str:
    """Arrow type in the words a pandas user knows (large_string -> string, double -> float64)."""
    if _is_text(t):
        return "string"
    return {"double": "float64", "float": "float32", "halffloat": "float16"}.get(str(t), str(t))


def to_frame(table: pa.Table, kinds: dict[str, str]) -> pd.DataFrame:
    """Convert to pandas with one dtype per kind, the same under pandas 2 and 3.

    Strings come out as pandas' default string dtype (``object`` on 2.x, ``str`` on 3.x),
    numbers and labels as float64 (NaN for null), timestamps as datetime64 or raw strings.
    The index is the 0-based row number in the file.
    """
    for col, kind in kinds.items():
        if col not in table.column_names:
            continue
        t = table.schema.field(col).type
        target = None
        if kind in ("number", "label"):
            target = pa.float64()  # unsafe: an int beyond 2**53 still converts (approximately)
        elif pa.types.is_dictionary(t) or (pa.types.is_null(t) and kind != "feature"):
            target = pa.string()  # else categories/objects would leak into "string" columns
        elif kind == "timestamp" and beyond_ns(table.column(col)):
            # pandas holds nanoseconds (years 1677-2262): cast to ISO strings, so the row is
            # quarantined as out of range by the timestamp parser instead of crashing here.
            target = pa.string()
        elif pa.types.is_date(t):
            target = pa.timestamp("s")
        if target is not None:
            i = table.column_names.index(col)
            table = table.set_column(i, col, table.column(col).cast(target, safe=False))
    # ignore_metadata: pandas metadata could restore an index or exotic dtypes we do not want
    return table.to_pandas(ignore_metadata=True)


def blank(s: pd.Series) -> pd.Series:
    """Mask of null, empty or whitespace-only strings."""
    return s.isna() | s.str.strip().eq("")


def require_non_null(df: pd.DataFrame, file: str, column: str) -> None:
    """Raise if ``column`` has null or empty values (used for the join key ``user_id``)."""
    bad = blank(df[column])
    if bad.any():
        raise ContractError(
            file,
            f"{int(bad.sum())} row(s) with a null or empty {column}; every row needs one",
            column=column,
            rows=format_rows(df, bad, df.columns[:6]),  # wide profiles: a few columns suffice
        )


# Event quarantine reasons by code; row_reasons() and the loader store the code (int8) per row
# and only turn it into a string for quarantined rows, which keeps millions of rows cheap.
EVENT_REASONS = ("", c.NULL_TEXT, c.BAD_TS, c.NULL_SOURCE, c.DUPLICATE_EVENT, c.NO_LABEL,
                 c.TS_OUT_OF_RANGE, c.TS_FUTURE)  # fmt: skip


def row_reasons(
    events: pd.DataFrame, ts: pd.Series, horizon: pd.Timestamp | None = None
) -> np.ndarray:
    """Per event, the code in EVENT_REASONS of the first failing row check (0 = fine).

    Args:
        events: Raw events as read.
        ts: Parsed UTC timestamps aligned with ``events`` (NaT = unparseable).
        horizon: Events after it are quarantined (None: no upper limit).
    """
    wild = out_of_range(events["ts"], ts)
    late = (ts > horizon) if horizon is not None else pd.Series(False, index=ts.index)
    masks = [blank(events["text"]), wild, ts.isna(), blank(events["source"]), late.fillna(False)]
    reasons = (c.NULL_TEXT, c.TS_OUT_OF_RANGE, c.BAD_TS, c.NULL_SOURCE, c.TS_FUTURE)
    codes = [EVENT_REASONS.index(r) for r in reasons]
    return np.select([np.asarray(m, dtype=bool) for m in masks], codes, default=0).astype(np.int8)


def duplicate_rows(
    events: pd.DataFrame, ts: pd.Series, keys: tuple[np.ndarray, np.ndarray], rows: np.ndarray
) -> np.ndarray:
    """Positions of exact duplicate events after the first, among ``rows``.

    Args:
        events: Raw events as read.
        ts: Parsed UTC timestamps (duplicates are judged on them, so '...Z' == '...+00:00').
        keys: Integer sort keys per row: (rank of the user_id string, ts ticks).
        rows: Positions of the candidate events, sorted by those keys.
    """
    # Hashing every text is the slow part, so only neighbours in (user_id, ts) order that
    # share both values are compared in full: a duplicate and its original always do.
    rank, ticks = keys[0][rows], keys[1][rows]
    same = (rank[1:] == rank[:-1]) & (ticks[1:] == ticks[:-1])
    cand = np.zeros(len(rows), dtype=bool)
    cand[1:] |= same
    cand[:-1] |= same
    cand_rows = np.sort(rows[cand])  # file order, so keep="first" keeps the earliest row
    key = events.iloc[cand_rows][[col for col in c.EVENT_KEY if col in events.columns]]
    return cand_rows[key.assign(ts=ts.iloc[cand_rows]).duplicated(keep="first").to_numpy()]
