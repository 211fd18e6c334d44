"""Batch refresh to parquet shards, full and incremental."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.infer.engine import Embedder
from qanchor.infer.refresh import refresh

SCEN = ["Will this user repay a cash loan?", "Will this user churn?"]


def read_embeddings(out_dir: Path) -> pd.DataFrame:
    """Every shard of a refresh, as one frame."""
    shards = sorted(out_dir.glob("shard-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)


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


def test_a_new_model_or_scenario_list_re_embeds_everyone(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    import shutil

    from qanchor.model.identity import model_id

    snaps = pd.read_parquet(built_tiny / "snapshots.parquet").head(12)
    out = tmp_path / "emb"
    first = refresh(make(tiny_model, snaps, built_tiny), out, SCEN, shard_users=5)
    assert first["model_version"] == model_id(tiny_model)
    assert (read_embeddings(out)["model_version"] == model_id(tiny_model)).all()
    # Another model (here: the same weights with one more file, e.g. a new adapter) has
    # another identity: none of the stored vectors may be kept, although no input changed.
    other = shutil.copytree(tiny_model, tmp_path / "other")
    (other / "scenarios").mkdir(exist_ok=True)
    (other / "scenarios" / "README").write_text("a change to the model directory")
    assert model_id(other) != model_id(tiny_model)
    again = refresh(make(other, snaps, built_tiny), out, SCEN, shard_users=5, incremental=True)
    assert again["embedded"] == 12 and again["full"] and again["shards_rewritten"] == 3
    assert set(read_embeddings(out)["model_version"]) == {model_id(other)}
    # Same model, same inputs: nothing to do; one more scenario: everyone again.
    same = refresh(make(other, snaps, built_tiny), out, SCEN, shard_users=5, incremental=True)
    assert same["embedded"] == 0 and not same["full"]
    more = SCEN + ["Will this user book a trip?"]
    grown = refresh(make(other, snaps, built_tiny), out, more, shard_users=5, incremental=True)
    assert grown["embedded"] == 12 and len(read_embeddings(out)) == 12 * 3


def test_refresh_shows_an_embed_bar_and_chunks_change_no_vector(
    tiny_model: Path, built_tiny: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import qanchor.infer.refresh as R

    snaps = pd.read_parquet(built_tiny / "snapshots.parquet")
    emb = make(tiny_model, snaps, built_tiny)
    users = sorted(emb.table.user_ids)
    whole = emb.embed(users, SCEN, use_cache=False)
    monkeypatch.setattr(R, "CHUNK_USERS", 64)  # 80 users: two calls, the second a partial block
    refresh(emb, tmp_path / "emb", SCEN, shard_users=50)
    assert "embed: 100%" in capsys.readouterr().err
    got = read_embeddings(tmp_path / "emb")
    vecs = {
        (u, s): v for u, s, v in zip(got["user_id"], got["scenario"], got["embedding"], strict=True)
    }
    for i, u in enumerate(users):
        for j, s in enumerate(SCEN):
            np.testing.assert_allclose(vecs[u, s], whole[i, j], rtol=0, atol=1e-6)
