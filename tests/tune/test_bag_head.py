"""Bag heads: cross-fitted logits, the shift they apply, and the round trip tune -> save -> serve."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qanchor.config import resolve
from qanchor.infer.anchor import Suffix
from qanchor.infer.engine import Embedder
from qanchor.tune.adapters import load_adapters
from qanchor.tune.bag_head import BagHead, fit_bag_head
from qanchor.tune.config import TuneConfig
from qanchor.tune.prompt import tune_model

TERMS = 30


def _toy(n: int = 120, seed: int = 0):
    """Users whose term 0 says their label (with noise terms), as (rows, y, ids)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    rows = []
    for label in y:
        idx = np.unique(np.r_[rng.choice(np.arange(1, TERMS), 4, replace=False), [0] * label])
        rows.append((idx.astype(np.int32), rng.uniform(0.2, 1.0, len(idx)).astype(np.float32)))
    return rows, y, [f"u{i:03d}" for i in range(n)]


def _protos() -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)  # fmt: skip


def test_training_users_get_the_logit_of_the_fold_that_held_them_out() -> None:
    rows, y, ids = _toy()
    head = fit_bag_head(rows, y, ids, TERMS, _protos(), step=0.1)
    assert head is not None and head.coef.shape == (5, TERMS)
    got = head.logits(ids, rows)
    x = np.zeros((len(rows), TERMS))
    for i, (idx, val) in enumerate(rows):
        x[i, idx] = val
    per_fold = x @ head.coef.T.astype(np.float64) + head.intercept
    at = {u: i for i, u in enumerate(head.users)}
    held = np.array([head.fold[at[u]] for u in ids])
    np.testing.assert_allclose(got, per_fold[np.arange(len(ids)), held], rtol=1e-5)
    # Every fold appears, and each training user is held out of exactly one fold model.
    assert set(held) == set(range(5))
    # A user the head never trained on (same bag, new id) gets the mean of the fold models.
    np.testing.assert_allclose(head.logits(["new"], rows[:1]), per_fold[0].mean(), rtol=1e-5)
    # Held-out logits still separate the classes: the bag says the label.
    assert got[y == 1].mean() > got[y == 0].mean() + 1.0


def test_the_shift_follows_the_label_axis_and_keeps_unit_norm() -> None:
    rows, y, ids = _toy()
    head = fit_bag_head(rows, y, ids, TERMS, _protos(), step=0.1)
    u = torch.nn.functional.normalize(torch.randn(len(ids), 8), dim=-1)
    logits = head.logits(ids, rows)
    out = head.apply(u, logits)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(len(ids)))
    moved = (out - u) @ torch.as_tensor(head.axis)
    z = (logits - head.mu) / head.sd
    # Users with a high bag logit move towards the class-1 prototype, low ones away from it.
    assert float(np.corrcoef(moved.numpy(), z)[0, 1]) > 0.9
    assert isinstance(head.apply(u.numpy(), logits), np.ndarray)


def test_a_head_needs_two_users_of_each_class() -> None:
    rows, _, ids = _toy(10)
    y = np.r_[np.ones(1), np.zeros(9)].astype(int)
    assert fit_bag_head(rows, y, ids, TERMS, _protos(), step=0.1) is None


def test_a_saved_head_loads_to_the_same_vectors(tmp_path: Path) -> None:
    rows, y, ids = _toy()
    head = fit_bag_head(rows, y, ids, TERMS, _protos(), step=0.1)
    head.save(tmp_path)
    back = BagHead.load(tmp_path)
    u = torch.nn.functional.normalize(torch.randn(len(ids), 8), dim=-1)
    for who in (ids, [f"new{i}" for i in range(len(ids))]):
        np.testing.assert_allclose(back.logits(who, rows), head.logits(who, rows), rtol=1e-6)
        torch.testing.assert_close(back.apply(u, back.logits(who, rows)),
                                   head.apply(u, head.logits(who, rows)))  # fmt: skip
    assert back.digest() == head.digest()
    assert BagHead.load(tmp_path / "nothing") is None


@pytest.fixture(scope="module")
def headed(tiny_model: Path, built_tiny: Path, tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("headed") / "model"
    shutil.copytree(tiny_model, model)
    cfg = resolve(TuneConfig, "tiny", overrides={"share": "none", "val_guard": False})
    tune_model(model, built_tiny, cfg, ["cash_loan_default"])
    return model


def test_tune_save_serve_gives_the_head_shifted_vector(headed: Path, built_tiny: Path) -> None:
    """Train -> save -> load: batch and serving paths return the raw vector moved by the head."""
    (adapter,) = load_adapters(headed)
    assert adapter.head is not None and adapter.meta["bag_head"]["folds"] >= 2
    snaps = pd.read_parquet(built_tiny / "snapshots.parquet")
    prof = pd.read_parquet(built_tiny / "profiles.parquet")
    emb = Embedder.from_dir(headed)
    emb.load_users(snaps, prof)
    train = pd.read_parquet(built_tiny / "labels.parquet").query("split == 'train'")
    # Two users the head trained on (held-out logits) and two it never saw (fold mean).
    seen = set(train["user_id"])
    users = [u for u in emb.user_ids if u in seen][:2] + [u for u in emb.user_ids if u not in seen][:2]  # fmt: skip
    assert len(users) == 4
    served = emb.embed(users, ["cash_loan_default"])[:, 0]
    raw = emb.engine.embed_rows(emb.users, emb.rows(users), [Suffix(adapter.query, adapter.prompt)])
    bags = [emb.table.inputs[r].bag_tfidf for r in emb.rows(users)]
    expected = adapter.head.apply(raw[:, 0], adapter.head.logits(users, bags))
    np.testing.assert_allclose(served, expected.numpy(), atol=1e-6)
    assert np.abs(served - raw[:, 0].numpy()).max() > 1e-4  # the head moved them
    # The serving path: a request's own inputs, the cache cold then warm (bags from the cache).
    rows = snaps[snaps["user_id"].isin(users)].set_index("user_id").loc[users].reset_index()
    fresh = Embedder.from_dir(headed)
    versions = dict(zip(emb.user_ids, emb.users.versions, strict=True))
    for _ in range(2):
        req = fresh.request_users(rows, prof, {u: versions[u] for u in users})
        sfx = [fresh.suffix("cash_loan_default")]
        got = fresh.engine.embed_pairs(req, req.rows(users), sfx, [(i, 0) for i in range(4)])
        np.testing.assert_allclose(got.numpy(), served, atol=1e-5)


def test_the_guard_keeps_a_head_only_if_it_raises_the_val_auc(
    tiny_model: Path, built_tiny: Path
) -> None:
    from qanchor.tune.adapters import ScenarioAdapter
    from qanchor.tune.heads import fit_heads
    from qanchor.tune.prompt import guard

    labels = pd.read_parquet(built_tiny / "labels.parquet")
    labels = labels[labels["scenario"] == "coupon_redemption"]
    train, val = labels[labels["split"] == "train"], labels[labels["split"] == "val"]
    emb = Embedder.from_dir(tiny_model)
    emb.load_users(pd.read_parquet(built_tiny / "snapshots.parquet"),
                   pd.read_parquet(built_tiny / "profiles.parquet"))  # fmt: skip
    adapter = ScenarioAdapter(
        "coupon_redemption", "Will this user redeem a coupon?", torch.zeros(0, 32), _protos()
    )
    fit_heads(emb, [adapter], train, step=0.1, seed=0)
    assert adapter.head is not None
    (out,) = guard(emb, [adapter], train, val, resolve(TuneConfig, "tiny"))
    verdict = out.meta["val_guard"]["bag_head"]
    assert set(verdict["val_auc"]) == {"with", "without"}
    assert verdict["kept"] == (verdict["val_auc"]["with"] > verdict["val_auc"]["without"])
    assert (out.head is not None) == verdict["kept"]
