"""The batch-embedding file: one schema, written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qanchor.infer.shards import COLUMNS, EmbeddingWriter, write_embeddings


def test_write_embeddings_round_trips_in_one_schema(tmp_path: Path) -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(2, 3, 2)  # [users, scenarios, d]
    versions = {"u2": "f2", "u1": "f1"}
    write_embeddings(tmp_path / "a.parquet", ["u2", "u1"], ["s", "r", "t"], vectors, versions, "m1")
    got = pd.read_parquet(tmp_path / "a.parquet")
    assert tuple(got.columns) == COLUMNS
    assert list(zip(got["user_id"], got["scenario"], strict=True)) == [
        ("u1", "r"), ("u1", "s"), ("u1", "t"), ("u2", "r"), ("u2", "s"), ("u2", "t")
    ]  # fmt: skip
    assert got["feature_version"].tolist() == ["f1"] * 3 + ["f2"] * 3
    assert (got["model_version"] == "m1").all()
    np.testing.assert_array_equal(np.stack(got["embedding"])[:3], vectors[1][[1, 0, 2]])
    # Rows carried over (an incremental refresh's unchanged users) keep their values.
    write_embeddings(tmp_path / "b.parquet", ["u3"], ["r"], [np.ones((1, 2))], {"u3": "f3"}, "m1",
                     keep=got[got["user_id"] == "u1"])  # fmt: skip
    both = pd.read_parquet(tmp_path / "b.parquet")
    assert both["user_id"].tolist() == ["u1"] * 3 + ["u3"]
    pd.testing.assert_frame_equal(both.head(3), got.head(3))


def test_the_block_writer_writes_what_write_embeddings_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    users = [f"u{i:02d}" for i in range(10)]
    vectors = rng.normal(size=(10, 3, 4)).astype(np.float32)
    versions = {u: f"f{u}" for u in users}
    write_embeddings(tmp_path / "whole.parquet", users, ["t", "r", "s"], vectors, versions, "m1")
    out = EmbeddingWriter(tmp_path / "blocks.parquet", "m1")
    for b in range(0, 10, 4):  # blocks of 4, 4, 2 users in user order
        out.write(users[b : b + 4], ["t", "r", "s"], vectors[b : b + 4], versions)
    with pytest.raises(ValueError, match="increasing user_id"):
        out.write(["u00"], ["t", "r", "s"], vectors[:1], versions)  # before the last block
    out.close()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "blocks.parquet"),
                                  pd.read_parquet(tmp_path / "whole.parquet"))  # fmt: skip


def test_a_writer_given_no_users_leaves_a_file_with_the_schema(tmp_path: Path) -> None:
    out = EmbeddingWriter(tmp_path / "empty.parquet", "m1")
    out.close()
    got = pd.read_parquet(tmp_path / "empty.parquet")
    assert tuple(got.columns) == COLUMNS and len(got) == 0
