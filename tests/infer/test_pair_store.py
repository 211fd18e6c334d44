"""The keys under which a stage's (user, suffix) vectors are reused by a later stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from qanchor.infer.anchor import Suffix
from qanchor.infer.pair_store import model_key, read_pairs, suffix_digest, write_pairs


def test_suffix_digest_is_content_and_an_empty_prompt_is_none() -> None:
    p = torch.ones(2, 4)
    assert suffix_digest(Suffix("q", torch.zeros(0, 4))) == suffix_digest(Suffix("q"))
    assert suffix_digest(Suffix("q", p)) == suffix_digest(Suffix("q", p.clone()))
    assert suffix_digest(Suffix("q", p)) != suffix_digest(Suffix("q", p * 2))
    assert suffix_digest(Suffix("q")) != suffix_digest(Suffix("r"))


def test_model_key_ignores_adapters_but_not_weights_or_precision(tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / "scenarios" / "s").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w1")
    key = model_key(model, bf16=False)
    (model / "scenarios" / "s" / "adapter.safetensors").write_bytes(b"new adapter")
    assert model_key(model, bf16=False) == key
    assert model_key(model, bf16=True) != key
    other = tmp_path / "other"
    shutil.copytree(model, other)
    (other / "weights.bin").write_bytes(b"w2")
    assert model_key(other, bf16=False) != key


def test_only_users_with_every_suffix_at_their_current_features_are_read(tmp_path: Path) -> None:
    a, b = Suffix("a"), Suffix("b", torch.ones(1, 2))
    vecs = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    write_pairs(tmp_path / "one.parquet", ["u1", "u2"], [a, b], vecs, {"u1": "v", "u2": "v"}, "k")
    write_pairs(tmp_path / "two.parquet", ["u3"], [a], vecs[:1, :1], {"u3": "v"}, "k")
    files = sorted(tmp_path.glob("*.parquet"))
    vectors, known = read_pairs(
        files, ["u1", "u2", "u3"], [b, a], {"u1": "v", "u2": "new", "u3": "v"}, "k"
    )
    # u1 whole, u2 nothing (its features changed since), u3 only suffix a.
    np.testing.assert_array_equal(known, [[True, True], [False, False], [False, True]])
    np.testing.assert_array_equal(vectors[0], vecs[0][::-1])  # in the order asked for
    np.testing.assert_array_equal(vectors[2, 1], vecs[0, 0])
    assert not read_pairs(files, ["u1"], [a], {"u1": "v"}, "other key")[1].any()
