"""The batch-embedding file: one schema, written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.infer.shards import COLUMNS, write_embeddings


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
