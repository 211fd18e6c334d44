"""Evaluation of a large user base reads a seeded sample of users, the same for every model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qanchor.config import resolve
from qanchor.eval.evaluate import SCORES_FILE, EvalConfig, evaluate, rescore
from qanchor.eval.probe import sample_users


def _labels(n_users: int) -> pd.DataFrame:
    users = [f"u{i:03d}" for i in range(n_users)]
    return pd.DataFrame({"user_id": users * 2, "scenario": ["a"] * n_users + ["b"] * n_users,
                         "label": [i % 2 for i in range(2 * n_users)],
                         "split": (["train", "train", "test"] * n_users)[: 2 * n_users]})  # fmt: skip


def test_sample_users_keeps_whole_users_seeded_and_all_when_under_the_cap() -> None:
    labels = _labels(50)
    assert sample_users(labels, 0).equals(labels) and sample_users(labels, 50).equals(labels)
    a, b = sample_users(labels, 20, seed=3), sample_users(labels, 20, seed=3)
    assert a.equals(b) and a["user_id"].nunique() == 20
    assert (a.groupby("user_id").size() == 2).all()  # every scenario row of a kept user stays
    assert set(sample_users(labels, 20, seed=4)["user_id"]) != set(a["user_id"])


def test_a_sample_of_some_users_falls_inside_the_sample_of_all() -> None:
    # Tuning samples training (and validation) users; evaluation samples all users with the
    # same seed and reads the tuned users' vectors back only where the samples overlap.
    labels = _labels(300)
    some = labels[labels["user_id"].isin([f"u{i:03d}" for i in range(0, 300, 3)])]  # 100 users
    everyone = set(sample_users(labels, 150, seed=1)["user_id"])
    part = set(sample_users(some, 30, seed=1)["user_id"])
    assert len(part) == 30 and part <= everyone
    assert not set(sample_users(some, 30, seed=2)["user_id"]) <= everyone  # the seed matters


def test_the_sample_is_independent_of_the_build_split() -> None:
    # The build splits users by a keyed hash of their ids; a sample ranked by the same hash
    # took the test users first (every test user in a two-thirds sample).
    from qanchor.data.split import assign_splits

    ids = pd.Series([f"u{i:05d}" for i in range(3000)])
    split = assign_splits(ids, None, 0.1, 0.2, salt=0)
    labels = pd.DataFrame({"user_id": ids, "scenario": "a", "label": 0, "split": split.to_numpy()})
    for seed in (0, 1):
        shares = sample_users(labels, 1500, seed)["split"].value_counts(normalize=True)
        assert abs(shares["test"] - 0.2) < 0.04 and abs(shares["val"] - 0.1) < 0.03, seed


def test_every_model_and_the_gate_score_the_same_sampled_users(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    labels = pd.read_parquet(built_tiny / "labels.parquet")
    n_all = labels["user_id"].nunique()
    cap = n_all * 2 // 3
    cfg = resolve(EvalConfig, "tiny", overrides={"max_users": cap, "baselines": ["tfidf_lr", "gbdt_features", "llm_untrained"]})  # fmt: skip
    out = evaluate(tiny_model, built_tiny, tmp_path / "eval", cfg)
    scores = pd.read_parquet(out / SCORES_FILE)
    sampled = sample_users(labels, cap, cfg.runtime.seed)
    want = set(sampled.loc[sampled["split"] == "test", "user_id"])
    assert 0 < len(want) < labels.loc[labels["split"] == "test", "user_id"].nunique()
    assert set(scores["model"]) >= {"qanchor_tuned", "qanchor_base", "tfidf_lr", "gbdt_features",
                                    "llm_untrained"}  # fmt: skip
    for model, rows in scores.groupby("model"):
        assert set(rows["user_id"]) <= want, model
    assert f"{cap:,} of {n_all:,}" in (out / "report.md").read_text()
    results, _ = rescore(tiny_model, built_tiny, cfg)  # what the gate compares with
    tuned = scores[scores["model"] == "qanchor_tuned"]
    for scenario, (y, _s) in results.items():
        assert len(y) == (tuned["scenario"] == scenario).sum()
