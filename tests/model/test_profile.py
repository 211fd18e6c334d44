"""The tabular source: profile plus activity aggregates, heavy-tailed columns log-scaled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.model.profile import ProfileFeaturizer, built_tables, tabular_frame


def test_tabular_frame_joins_profile_and_aggregates() -> None:
    prof = pd.DataFrame({"user_id": ["a", "b"], "age": [30, 40], "snapshot_ts": [0, 0]})
    agg = pd.DataFrame({"user_id": ["b", "c"], "bill__count": [5, 7], "snapshot_ts": [0, 0]})
    out = tabular_frame(prof, agg).set_index("user_id")
    assert sorted(out.columns) == ["age", "bill__count"]  # snapshot_ts is not a feature
    assert out.loc["b", "bill__count"] == 5 and np.isnan(out.loc["a", "bill__count"])
    assert out.loc["c", "bill__count"] == 7 and np.isnan(out.loc["c", "age"])
    assert tabular_frame(None, None) is None
    assert tabular_frame(None, agg)["bill__count"].tolist() == [5, 7]
    # One join for every reader, columns in argument order (the GBDT baseline and input drift
    # put the aggregates first).
    assert list(tabular_frame(prof, agg).columns) == ["user_id", "age", "bill__count"]
    assert list(tabular_frame(agg, prof).columns) == ["user_id", "bill__count", "age"]


def test_built_tables_reads_what_a_build_has(tmp_path: Path) -> None:
    agg = pd.DataFrame({"user_id": ["a"], "bill__count": [5.0]})
    agg.to_parquet(tmp_path / "aggregates.parquet")
    profiles, aggregates = built_tables(tmp_path)  # a dataset without profiles
    assert profiles is None
    pd.testing.assert_frame_equal(aggregates, agg)


def test_heavy_tailed_counts_are_log_scaled_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(500)],
                          "count": rng.pareto(1.5, 500) * 10, "score": rng.normal(size=500)})  # fmt: skip
    fz = ProfileFeaturizer.fit(frame)
    assert fz.log1p == ["count"]  # the normal column is left linear
    x = fz.transform(frame)
    expect = np.log1p(frame["count"])
    np.testing.assert_allclose(x[:, 0], (expect - expect.mean()) / expect.std(), rtol=1e-4)
    again = ProfileFeaturizer.from_dict(fz.to_dict())
    np.testing.assert_array_equal(again.transform(frame), x)
