"""Reading some users' rows of a per-user table: the filtered read's frame, row group by group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from qanchor.data.user_rows import read_user_rows, write_user_rows


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n)],
            "event_text": [[f"t{i}", f"t{i + 1}"] for i in range(n)],
            "event_value": [np.array([1.5, np.nan]) * i for i in range(n)],
            "event_ts": [
                np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[us]") for _ in range(n)
            ],
            "score": rng.normal(size=n),
        }
    )


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert (got.dtypes == want.dtypes).all()
    for col in got.columns:
        for a, b in zip(got[col], want[col], strict=True):
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b


@pytest.mark.parametrize("columns", [None, ["event_text", "score"]])
def test_the_rows_of_the_filtered_read(tmp_path: Path, columns: list[str] | None) -> None:
    path = tmp_path / "t.parquet"
    _table(50).to_parquet(path, index=False, row_group_size=8)
    ids = ["u0003", "u0004", "u0031", "u0049", "nobody"]
    want = pd.read_parquet(path, columns=columns, filters=[("user_id", "in", ids)])
    got = read_user_rows(path, ids, columns)
    assert len(got) == 4
    _assert_same(got, want)


def test_row_groups_without_a_wanted_user_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.parquet"
    _table(64).to_parquet(path, index=False, row_group_size=8)
    read = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN202
        read.extend(kwargs["row_groups"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    got = read_user_rows(path, ["u0009", "u0010", "u0041"])
    assert list(got["user_id"]) == ["u0009", "u0010", "u0041"]
    assert read == [1, 5]  # rows 8-15 and 40-47 of 8 groups


def test_no_wanted_user_gives_an_empty_frame_of_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _table(10).to_parquet(path, index=False)
    got = read_user_rows(path, ["nobody"])
    assert got.empty and list(got.columns) == list(_table(1).columns)


@pytest.mark.parametrize("empty_first", [False, True])
def test_the_group_wise_writer_writes_what_to_parquet_writes(
    tmp_path: Path, empty_first: bool
) -> None:
    """``write_user_rows`` converts 4 rows at a time and gives the frame ``to_parquet`` gives,
    in groups of 4; a first group of empty lists (no element type) takes the whole-frame path."""
    df = _table(10)
    if empty_first:
        df["event_text"] = [[] for _ in range(4)] + df["event_text"].tolist()[4:]
    df.to_parquet(tmp_path / "whole.parquet", index=False, row_group_size=4)
    assert write_user_rows(df, tmp_path / "groups.parquet", rows=4) == 10
    _assert_same(pd.read_parquet(tmp_path / "groups.parquet"),
                 pd.read_parquet(tmp_path / "whole.parquet"))  # fmt: skip
    assert pq.ParquetFile(tmp_path / "groups.parquet").metadata.num_row_groups == 3
