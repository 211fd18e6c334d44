"""Evaluation embeds both qanchor models in one streamed pass: one prefix per user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qanchor.data.contract import read_scenarios
from qanchor.eval.model_features import _distinct, qanchor_features
from qanchor.infer.engine import Embedder, Suffix
from qanchor.model.data import BuiltData


def test_distinct_suffixes_merge_an_empty_prompt_with_none_and_keep_real_prompts() -> None:
    p = torch.ones(2, 4)
    wanted = [Suffix("a", p), Suffix("b", torch.zeros(0, 4)), Suffix("a"), Suffix("b"),
              Suffix("a", p.clone())]  # fmt: skip
    got, column = _distinct(wanted)
    assert [s.query for s in got] == ["a", "b", "a"]
    assert column == [0, 1, 2, 1, 0]  # the empty prompt is the bare query; equal prompts merge


def test_one_streamed_pass_gives_the_engines_vectors(tiny_model: Path, built_tiny: Path) -> None:
    data = BuiltData.load(built_tiny)
    scen = read_scenarios(built_tiny / "scenarios.yaml")[:3]
    got = qanchor_features(tiny_model, data, scen, chunk=16)
    tuned, base, info = got.tuned, got.base, got.times
    users = sorted(set(data.users["user_id"]))
    assert info["prefixes_computed"] == len(users)  # not one per model, not one per scenario
    assert info["prefix_tokens_max"] > 0
    emb = Embedder.from_dir(tiny_model)
    emb.load_users(data.snapshots, data.profiles)
    for s in scen:  # the reference: one scenario at a time through the cached engine
        ref = emb.embed(users, [s.query], tuned=False)[:, 0]
        assert list(tuned[s.name].index) == users
        np.testing.assert_allclose(tuned[s.name].to_numpy(), ref, atol=1e-5)
        np.testing.assert_allclose(base[s.name].to_numpy(), ref, atol=1e-5)
