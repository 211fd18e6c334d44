"""Vectors computed once per run: evaluation reuses the tuning guard's, the embed stage
evaluation's (same model, features, precision), and only the rest is embedded; the reused
vectors are the ones the stage would have computed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.eval.evaluate import EvalConfig, evaluate
from qanchor.infer.engine import Embedder
from qanchor.infer.shards import reusable, vectors_file, write_embeddings
from qanchor.orchestrate import stages
from qanchor.orchestrate.rundir import RunPaths

from .conftest import TWO_SCENARIOS


def _vectors(frame: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    return {(u, s): np.asarray(e) for u, s, e in frame[["user_id", "scenario", "embedding"]].itertuples(index=False)}  # fmt: skip


EVAL = {"max_users": 50, "baselines": ["tfidf_lr"], "cache_features": False}


@pytest.fixture(scope="module")
def evaluated_run(built_tiny: Path, tiny_model: Path, tmp_path_factory) -> RunPaths:
    """A run whose model has adapters for two scenarios and whose evaluation sampled 50 users."""
    run = RunPaths(tmp_path_factory.mktemp("reuse") / "run")
    shutil.copytree(built_tiny, run.built)
    shutil.copytree(tiny_model, run.model)
    stages.tune_scenarios(run.root, list(TWO_SCENARIOS), "tiny")
    stages.evaluate(run.root, "tiny", overrides=EVAL)
    return run


def test_evaluation_reuses_the_guards_vectors(evaluated_run: RunPaths, tmp_path: Path) -> None:
    kept = list(evaluated_run.guard_vectors.glob("*.parquet"))
    assert len(kept) == 1
    guard = pd.read_parquet(kept[0])
    evaluated = set(pd.read_parquet(evaluated_run.eval / vectors_file(False))["user_id"])
    assert 0 < len(set(guard["user_id"]) & evaluated) < len(evaluated)  # test users: not seen
    report = (evaluated_run.eval / "report.md").read_text()
    reused = int(report.split("Pairs reused from tuning: ")[1].split(" of")[0].replace(",", ""))
    assert reused > 0
    # Evaluated again without them: the same vectors, computed.
    alone = evaluate(evaluated_run.model, evaluated_run.built, tmp_path / "eval",
                     resolve(EvalConfig, "tiny", overrides=EVAL))  # fmt: skip
    assert "reused" not in (alone / "report.md").read_text()
    a, b = (_vectors(pd.read_parquet(d / vectors_file(False))) for d in (evaluated_run.eval, alone))
    assert a.keys() == b.keys()
    np.testing.assert_allclose(np.stack([a[k] for k in b]), np.stack(list(b.values())), atol=1e-5)


def test_evaluation_writes_its_tuned_vectors_in_the_shard_schema(evaluated_run: RunPaths) -> None:
    f = pd.read_parquet(evaluated_run.eval / vectors_file(False))
    assert f["user_id"].nunique() == 50  # the evaluated sample, not every user
    assert set(f["scenario"]) == set(TWO_SCENARIOS)  # adapted scenarios only
    assert f["model_version"].nunique() == 1


def test_embed_copies_evaluated_users_and_matches_a_fresh_embedding(
    evaluated_run: RunPaths, tmp_path: Path
) -> None:
    got = [stages.embed_shard(evaluated_run.root, k, 2) for k in range(2)]
    assert sum(g["reused"] for g in got) == 50
    with_reuse = pd.concat([pd.read_parquet(g["path"]) for g in got])
    users = pd.read_parquet(evaluated_run.built / "users.parquet")["user_id"]
    assert set(with_reuse["user_id"]) == set(users)
    # The same run without evaluation's file: every vector computed by the embed stage.
    bare = RunPaths(tmp_path / "bare")
    for part in ("built", "model"):
        shutil.copytree(getattr(evaluated_run, part), getattr(bare, part))
    # Loaded and written in blocks of 16 users: the file must not depend on the block size.
    fresh = stages.embed_shard(bare.root, 0, 1, block=16)
    assert fresh["reused"] == 0
    written = pd.read_parquet(fresh["path"])
    assert written[["user_id", "scenario"]].equals(
        written.sort_values(["user_id", "scenario"])[["user_id", "scenario"]]
    )
    a, b = _vectors(with_reuse), _vectors(written)
    assert a.keys() == b.keys()
    # Equal up to float rounding: the evaluated users were embedded in other batches.
    np.testing.assert_allclose(np.stack([a[k] for k in b]), np.stack(list(b.values())), atol=1e-5)
    # Told not to reuse (to measure the embedding rate), the stage ignores evaluation's file.
    again = stages.embed_shard(evaluated_run.root, 0, 1, reuse=False)
    assert again["reused"] == 0
    c = _vectors(pd.read_parquet(again["path"]))
    assert c.keys() == b.keys()
    np.testing.assert_allclose(np.stack([c[k] for k in b]), np.stack(list(b.values())), atol=1e-5)


def test_a_shard_evaluation_covers_is_copied_without_loading_the_model(
    evaluated_run: RunPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Evaluated on every user (a build no larger than max_users): the shard needs no model.
    run = RunPaths(tmp_path / "all")
    for part in ("built", "model"):
        shutil.copytree(getattr(evaluated_run, part), getattr(run, part))
    stages.evaluate(run.root, "tiny", overrides=EVAL | {"max_users": 0})
    fresh = stages.embed_shard(run.root, 1, 2, reuse=False)
    computed = pd.read_parquet(fresh["path"])

    def no_model(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise AssertionError("the shard loaded the model")

    monkeypatch.setattr(Embedder, "from_dir", no_model)
    copied = stages.embed_shard(run.root, 1, 2)
    assert copied["reused"] == copied["users"] == computed["user_id"].nunique() > 0
    got = pd.read_parquet(copied["path"])
    # Feature versions computed without the model are the model's own.
    columns = ["user_id", "scenario", "feature_version", "model_version"]
    assert got[columns].equals(computed[columns])
    a, b = _vectors(got), _vectors(computed)
    np.testing.assert_allclose(np.stack([a[k] for k in b]), np.stack(list(b.values())), atol=1e-5)
    # One user whose events changed since evaluation: that shard loads the model and embeds.
    snaps = pd.read_parquet(run.built / "snapshots.parquet")
    mine = snaps.index[snaps["user_id"] == got["user_id"].iloc[0]][0]
    other = snaps.index[snaps["user_id"] != got["user_id"].iloc[0]][0]
    for column in [c for c in snaps.columns if c.startswith(("event_", "bag_"))]:
        snaps.at[mine, column] = snaps.at[other, column]
    snaps.to_parquet(run.built / "snapshots.parquet")
    with pytest.raises(AssertionError, match="loaded the model"):
        stages.embed_shard(run.root, 1, 2)


def test_the_stage_runs_the_chosen_shards_of_a_finer_split(evaluated_run: RunPaths) -> None:
    # What a benchmark samples of the stage: shards 1 and 3 of 4, every 4th user from each.
    got = stages.embed_all(evaluated_run.root, workers=1, num_shards=4, only=[1, 3])
    assert [Path(g["path"]).name for g in got] == [
        "shard-00001-of-00004.parquet", "shard-00003-of-00004.parquet"
    ]  # fmt: skip
    users = sorted(pd.read_parquet(evaluated_run.built / "snapshots.parquet")["user_id"])
    for g, offset in zip(got, (1, 3), strict=True):
        assert sorted(set(pd.read_parquet(g["path"])["user_id"])) == users[offset::4]


def test_only_current_complete_vectors_are_reusable(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    vec = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    write_embeddings(path, ["a"], ["s1", "s2"], vec, {"a": "v1"}, "m1")
    keep = pd.read_parquet(path)
    write_embeddings(path, ["b", "c"], ["s1"], vec[:, :1].repeat(2, 0), {"b": "v1", "c": "v1"},
                     "m1", keep=keep)  # fmt: skip
    got = reusable(path, ["a", "b", "c"], ["s2", "s1"], {"a": "v1", "b": "v1", "c": "v2"}, "m1")
    assert list(got) == ["a"]  # b lacks s2, c's features changed since
    np.testing.assert_array_equal(got["a"], vec[0][::-1])  # in the order asked for
    assert reusable(path, ["a"], ["s1", "s2"], {"a": "v1"}, "m2") == {}  # another model
    assert reusable(tmp_path / "none.parquet", ["a"], ["s1"], {"a": "v1"}, "m1") == {}
