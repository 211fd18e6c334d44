"""Batch refresh to parquet shards, full and incremental."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.infer.engine import Embedder
from qanchor.infer.refresh import read_embeddings, refresh

SCEN = ["Will this user repay a cash loan?", "Will this user churn?"]


def make(model: Path, snaps: pd.DataFrame, built: Path) -> Embedder:
    emb = Embedder.from_dir(model)
    emb.load_users(snaps, pd.read_parquet(built / "profiles.parquet"))
    return emb


def test_full_then_incremental_refresh(tiny_model: Path, built_tiny: Path, tmp_path: Path) -> None:
    snaps = pd.read_parquet(built_tiny / "snapshots.parquet").head(30)
    out = tmp_path / "emb"
    full = refresh(make(tiny_model, snaps, built_tiny), out, SCEN, shard_users=8)
    assert full["embedded"] == 30 and len(list(out.glob("shard-*.parquet"))) == 4
    before = read_embeddings(out)
    assert len(before) == 60 and len(before["embedding"].iloc[0]) == 16

    again = refresh(make(tiny_model, snaps, built_tiny), out, SCEN, shard_users=8, incremental=True)
    assert again["embedded"] == 0 and again["shards_rewritten"] == 0

    changed = snaps.copy()
    uid = changed["user_id"].iloc[5]
    changed.at[5, "event_text"] = list(changed.at[5, "event_text"][:-1]) + [
        "searched for a brand new thing"
    ]
    inc = refresh(make(tiny_model, changed, built_tiny), out, SCEN, shard_users=8, incremental=True)
    assert inc["embedded"] == 1 and inc["shards_rewritten"] == 1
    after = read_embeddings(out)
    same = before["user_id"] != uid
    pd.testing.assert_frame_equal(
        after[after["user_id"] != uid].reset_index(drop=True), before[same].reset_index(drop=True)
    )
    fresh = make(tiny_model, changed, built_tiny).embed([uid], SCEN)[0]
    got = np.stack(
        after.loc[after["user_id"] == uid].sort_values("scenario")["embedding"].to_numpy()
    )
    order = np.argsort(SCEN)
    np.testing.assert_allclose(got, fresh[order], atol=1e-6)
    assert not np.allclose(
        got,
        np.stack(
            before.loc[before["user_id"] == uid].sort_values("scenario")["embedding"].to_numpy()
        ),
    )
