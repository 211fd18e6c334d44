"""Some users' rows of a per-user parquet table, in memory proportional to those rows.

``pd.read_parquet(path, filters=[("user_id", "in", ids)])`` decodes every row group the filter
cannot rule out, whole, before filtering: on a build's one-row-group ``snapshots.parquet`` of
100,000 synthetic users that is the whole table (1.95 GB peak to read 5,000 users). Here the
file is read a batch at a time and only the wanted rows are kept; row groups whose ``user_id``
range holds none of them are skipped unread. A build writes its tables in sorted user order
with :data:`ROW_GROUP_ROWS`-row groups, so a block of neighbouring users (the embed stage's)
reads a row group or two.

    rows = read_user_rows("built/snapshots.parquet", ["u0001", "u0042"])
"""

from __future__ import annotations

import bisect
from collections.abc import Collection
from pathlib import Path

import pandas as pd

ROW_GROUP_ROWS = 4096  # rows per row group of a built table (a few MB of snapshots)
BATCH_ROWS = 1024  # rows decoded at once while filtering


def read_user_rows(
    path: str | Path, user_ids: Collection[str], columns: list[str] | None = None
) -> pd.DataFrame:
    """The rows of ``path`` whose ``user_id`` is in ``user_ids``, in file order.

    The same frame as ``pd.read_parquet(path, columns=columns, filters=[("user_id", "in",
    list(user_ids))])``, read without holding the rest of the file.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = sorted(set(map(str, user_ids)))
    f = pq.ParquetFile(path)
    schema = (
        f.schema_arrow if columns is None else pa.schema([f.schema_arrow.field(c) for c in columns])
    )
    if columns is not None and "user_id" not in columns:
        columns = [*columns, "user_id"]  # read to filter on, dropped after
    value_set = pa.array(wanted, type=pa.string())
    parts = []
    for group in _groups_holding(f, wanted):
        for batch in f.iter_batches(BATCH_ROWS, row_groups=[group], columns=columns):
            keep = pc.is_in(batch.column("user_id").cast(pa.string()), value_set=value_set)
            if pc.any(keep).as_py():
                parts.append(batch.filter(keep).select(schema.names))
    table = pa.Table.from_batches(parts, schema=schema.with_metadata(f.schema_arrow.metadata))
    return table.to_pandas()


def _groups_holding(f, wanted: list[str]) -> list[int]:  # noqa: ANN001
    """Row groups whose ``user_id`` statistics allow one of ``wanted`` (sorted)."""
    col = f.schema_arrow.get_field_index("user_id")
    out = []
    for g in range(f.metadata.num_row_groups):
        stats = f.metadata.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            out.append(g)
            continue
        k = bisect.bisect_left(wanted, str(stats.min))
        if k < len(wanted) and wanted[k] <= str(stats.max):
            out.append(g)
    return out


def write_user_rows(df: pd.DataFrame, path: str | Path, rows: int = ROW_GROUP_ROWS) -> int:
    """Write ``df`` (no index) to parquet in ``rows``-row groups, converting one group to Arrow
    at a time; returns its row count. The same file as ``df.to_parquet(path, index=False,
    row_group_size=rows)``, which converts the whole frame first: for the snapshots of 100,000
    synthetic users that copy peaked the build at 4.2 GB.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = pa.Table.from_pandas(df.iloc[:rows], preserve_index=False)
    if any("null" in str(t) for t in first.schema.types):  # null, list<item: null>, ...
        # A group of empty lists or missing values gives no element type to reuse for the rest.
        df.to_parquet(path, index=False, row_group_size=rows)
        return len(df)
    with pq.ParquetWriter(path, first.schema) as out:
        out.write_table(first)
        for a in range(rows, len(df), rows):
            part = df.iloc[a : a + rows]
            out.write_table(pa.Table.from_pandas(part, schema=first.schema, preserve_index=False))
    return len(df)
