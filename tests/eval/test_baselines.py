"""The GBDT and text-mean-pool baselines on small built datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.data.synth import SynthConfig, synth
from qanchor.eval.baselines import (
    gbdt_features,
    tabular_features,
    text_mean_pool_features,
    text_mean_pool_recent_features,
)
from qanchor.eval.metrics import auc_ks


@pytest.fixture(scope="session")
def built300(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 synthetic users built with the tiny preset."""
    root = tmp_path_factory.mktemp("eval300")
    raw = synth(SynthConfig(users=300, seed=0), root / "raw")
    return build_dataset(raw, root / "built", resolve(BuildConfig, "tiny"))


def test_tabular_features_join_aggregates_and_profile(built300: Path) -> None:
    X = tabular_features(built300)
    users = pd.read_parquet(built300 / "users.parquet")["user_id"]
    assert sorted(X.index) == sorted(users)
    assert "profile__gender" in X.columns and X["profile__gender"].dtype == "category"
    assert not any(pd.api.types.is_datetime64_any_dtype(X[c]) for c in X.columns)


def test_gbdt_features_scores_every_scenario_with_both_classes(built300: Path) -> None:
    labels = pd.read_parquet(built300 / "labels.parquet")
    test, train = labels[labels["split"] == "test"], labels[labels["split"] != "test"]
    ok = {
        s
        for s in labels["scenario"].unique()
        if test.loc[test["scenario"] == s, "label"].nunique() == 2
        and train.loc[train["scenario"] == s, "label"].nunique() == 2
    }
    res = gbdt_features(built300, seed=0)
    assert set(res) == ok and set(res.skipped) == set(labels["scenario"]) - ok
    for s, (y, scores) in res.items():
        n_test = (test["scenario"] == s).sum()
        assert len(y) == len(scores) == n_test and ((scores >= 0) & (scores <= 1)).all()
    assert np.mean([auc_ks(*r)[0] for r in res.values()]) > 0.55
    again = gbdt_features(built300, seed=0)
    for s in res:  # deterministic for a fixed seed
        np.testing.assert_array_equal(res[s][1], again[s][1])


def test_text_mean_pool_recent_features(
    built300: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qanchor.model import backbones

    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path / "cache"))
    enc = backbones.load_text_encoder("tiny")
    feats = text_mean_pool_recent_features(built300, encoder="tiny", per_source=3)
    users = pd.read_parquet(built300 / "users.parquet")["user_id"]
    assert list(feats.index) == list(users) and feats.shape == (len(users), enc.dim)
    assert (tmp_path / "cache" / "event_vectors" / "tiny-64" / "vectors.npy").is_file()

    # One user's row is the plain mean of their 3 most recent events per source.
    snap = pd.read_parquet(built300 / "snapshots.parquet").iloc[0]
    by_src: dict[str, list[str]] = {}
    for src, text in zip(snap["event_source"], snap["event_text"], strict=True):
        by_src.setdefault(src, []).append(text)
    texts = [t for lst in by_src.values() for t in lst[-3:]]
    expected = enc.encode(texts).numpy().mean(0)
    np.testing.assert_allclose(feats.loc[snap["user_id"]].to_numpy(), expected, atol=1e-5)

    # A second call reads every vector from the cache: the encoder is never loaded.
    def no_load(path):
        raise AssertionError("encoder loaded although every text is cached")

    monkeypatch.setattr(backbones, "load_text_encoder", no_load)
    np.testing.assert_array_equal(
        text_mean_pool_recent_features(built300, encoder="tiny", per_source=3).to_numpy(),
        feats.to_numpy(),
    )


def test_users_without_events_get_zeros(
    built300: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path / "cache"))
    built = tmp_path / "built"
    shutil.copytree(built300, built)
    snaps = pd.read_parquet(built / "snapshots.parquet")
    quiet = snaps["user_id"].iloc[1]
    for col in ("event_source", "event_ts", "event_text", "event_value"):
        snaps.at[1, col] = snaps.at[1, col][:0]
    snaps.drop(index=2).to_parquet(built / "snapshots.parquet")  # and one user with no row
    feats = text_mean_pool_recent_features(built, encoder="tiny", per_source=2)
    assert len(feats) == len(pd.read_parquet(built / "users.parquet"))
    assert (feats.loc[quiet] == 0).all() and (feats.loc[snaps["user_id"].iloc[2]] == 0).all()
    assert (feats.drop(index=[quiet, snaps["user_id"].iloc[2]]).abs().sum(1) > 0).all()


def test_text_mean_pool_is_the_count_weighted_whole_history(
    built300: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qanchor.model import backbones

    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path / "cache"))
    enc = backbones.load_text_encoder("tiny")
    feats = text_mean_pool_features(built300, encoder="tiny")
    users = pd.read_parquet(built300 / "users.parquet")["user_id"]
    assert list(feats.index) == list(users) and feats.shape == (len(users), enc.dim)
    snaps = pd.read_parquet(built300 / "snapshots.parquet")
    # A user whose bag holds a repeated text, so the weighting matters.
    snap = snaps[snaps["bag_count"].map(lambda c: len(c) > 1 and max(c) > 1)].iloc[0]
    vecs = enc.encode(list(snap["bag_text"])).numpy()
    weights = np.asarray(snap["bag_count"], np.float64)
    expected = (weights[:, None] * vecs).sum(0) / weights.sum()
    np.testing.assert_allclose(feats.loc[snap["user_id"]].to_numpy(), expected, atol=1e-5)
    assert not np.allclose(expected, vecs.mean(0), atol=1e-5)  # plain mean would differ


def _toy_build(raw: Path, out: Path) -> Path:
    return build_dataset(raw, out, resolve(BuildConfig, "tiny"))


def test_old_event_moves_whole_history_pool_but_not_the_recent_one(
    toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path / "cache"))
    raw = toy_dataset
    before = _toy_build(raw, tmp_path / "before")
    cutoff = pd.read_parquet(before / "snapshots.parquet")["snapshot_ts"].iloc[0]
    events = pd.read_parquet(raw / "events.parquet")
    past = events[events["ts"] < cutoff].sort_values("ts")
    # A user with at least 3 past events in one source: its oldest is beyond a cap of 2.
    sizes = past.groupby(["user_id", "source"]).size()
    user, source = sizes[sizes >= 3].index[0]
    oldest = past[(past["user_id"] == user) & (past["source"] == source)].index[0]
    events.loc[oldest, "text"] = f"{source} event about something else entirely"
    events.to_parquet(raw / "events.parquet")
    after = _toy_build(raw, tmp_path / "after")

    whole = [text_mean_pool_features(b, encoder="tiny") for b in (before, after)]
    recent = [text_mean_pool_recent_features(b, encoder="tiny", per_source=2) for b in (before, after)]  # fmt: skip
    assert not np.allclose(whole[0].loc[user], whole[1].loc[user])
    pd.testing.assert_frame_equal(whole[0].drop(index=user), whole[1].drop(index=user))
    pd.testing.assert_frame_equal(recent[0], recent[1])


def test_whole_history_baselines_need_the_bag_columns(built300: Path, tmp_path: Path) -> None:
    from qanchor.errors import QAnchorError

    built = tmp_path / "old-build"
    shutil.copytree(built300, built)
    snaps = pd.read_parquet(built / "snapshots.parquet")
    snaps.drop(columns=["bag_source", "bag_text", "bag_count"]).to_parquet(
        built / "snapshots.parquet"
    )
    with pytest.raises(QAnchorError, match="rebuild it with `qanchor data build"):
        text_mean_pool_features(built, encoder="tiny")


def test_text_pools_do_not_depend_on_the_user_block(
    built300: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of users bound the pools' memory; a user's features must not depend on them.
    from qanchor.eval import baselines

    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path / "cache"))
    whole = [text_mean_pool_features(built300, encoder="tiny"),
             text_mean_pool_recent_features(built300, encoder="tiny", per_source=3)]  # fmt: skip
    monkeypatch.setattr(baselines, "POOL_BLOCK", 7)  # 43 blocks, the last one partial
    blocked = [text_mean_pool_features(built300, encoder="tiny"),
               text_mean_pool_recent_features(built300, encoder="tiny", per_source=3)]  # fmt: skip
    for a, b in zip(whole, blocked, strict=True):
        assert list(a.index) == list(b.index) and (a.abs().sum(1) > 0).mean() > 0.9
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-6)
