"""Tuning loads whole inputs only for the users it embeds, bag-head inputs for every trainee."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.eval.probe import sample_users
from qanchor.infer.engine import Embedder
from qanchor.model.data import BuiltData
from qanchor.tune import inputs
from qanchor.tune.config import TuneConfig
from qanchor.tune.guard import sample_users as guard_sample


def _same_input(a: tuple, b: tuple) -> None:
    (terms_a, vals_a), prof_a = a
    (terms_b, vals_b), prof_b = b
    np.testing.assert_array_equal(terms_a, terms_b)
    np.testing.assert_allclose(vals_a, vals_b)
    np.testing.assert_allclose(prof_a, prof_b)


def test_tuning_embeds_its_samples_and_reads_every_trainees_head_input(
    tiny_model: Path, built_tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With samples smaller than the splits, the embedder holds just the prompt steps' and the
    guard's samples (the guard draws the same users from them as from all), while every
    training user gets the head input a whole load gives it, read 7 users at a time."""
    labels = pd.read_parquet(built_tiny / "labels.parquet")
    train, val = labels[labels["split"] == "train"], labels[labels["split"] == "val"]
    cfg = resolve(TuneConfig, "tiny", overrides={"train_users": 12, "guard_users": 9})
    monkeypatch.setattr(inputs, "HEAD_BLOCK", 7)
    emb = Embedder.from_dir(tiny_model)
    heads = inputs.load_users(emb, built_tiny, cfg, train, val)

    loaded = set(emb.user_ids)
    assert set(sample_users(train, 12)["user_id"]) <= loaded
    for frame in (train, val):
        assert guard_sample(frame, loaded, 9, 0) == guard_sample(frame, set(frame["user_id"]), 9, 0)
    assert len(loaded) < train["user_id"].nunique() + val["user_id"].nunique()
    assert loaded == inputs.embedded_users(train, val, cfg)

    assert set(heads) == set(train["user_id"])
    whole, data = Embedder.from_dir(tiny_model), BuiltData.load(built_tiny)
    whole.load_users(data.snapshots, data.profiles)
    for user, got in heads.items():
        (row,) = whole.rows([user])
        _same_input(got, whole.table.inputs[row].head_input())
