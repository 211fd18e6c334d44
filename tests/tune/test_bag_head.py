"""Bag heads: cross-fitted logits, the shift they apply, and the round trip tune -> save -> serve."""

from __future__ import annotations

import shutil
from dataclasses import replace
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


def _toy(n: int = 120, seed: int = 0, tabular: bool = True):
    """Users whose term 0 and tabular column 0 say their label (with noise), as (inputs, y, ids)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    inputs = []
    for label in y:
        idx = np.unique(np.r_[rng.choice(np.arange(1, TERMS), 4, replace=False), [0] * label])
        row = (idx.astype(np.int32), rng.uniform(0.2, 1.0, len(idx)).astype(np.float32))
        tab = np.r_[label + rng.normal(0, 1.0), rng.normal(0, 1, 3)].astype(np.float32)
        inputs.append((row, tab if tabular else None))
    return inputs, y, [f"u{i:03d}" for i in range(n)]


def _protos() -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)  # fmt: skip


def _held_out(head: BagHead, ids: list[str]) -> np.ndarray:
    at = {u: i for i, u in enumerate(head.users)}
    return np.array([head.fold[at[u]] for u in ids])


def test_training_users_get_the_logits_of_the_fold_that_held_them_out() -> None:
    import lightgbm

    inputs, y, ids = _toy()
    head = fit_bag_head(inputs, y, ids, TERMS, _protos(), step=0.1)
    assert head is not None and head.coef.shape == (5, TERMS) and len(head.trees) == 5
    x = np.zeros((len(inputs), TERMS))
    for i, ((idx, val), _) in enumerate(inputs):
        x[i, idx] = val
    tab = np.stack([t for _, t in inputs]).astype(np.float64)
    bag = x @ head.coef.T.astype(np.float64) + head.intercept
    trees = np.stack(
        [lightgbm.Booster(model_str=t).predict(tab, raw_score=True) for t in head.trees], 1
    )
    held = _held_out(head, ids)
    # Every fold appears, and each training user is held out of exactly one fold model.
    assert set(held) == set(range(5))
    got = head.parts(ids, inputs)
    np.testing.assert_allclose(got[:, 0], bag[np.arange(len(ids)), held], rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], trees[np.arange(len(ids)), held], rtol=1e-6)
    # A user the head never trained on (same inputs, new id) gets the mean of the fold models.
    new = head.parts(["new"], inputs[:1])[0]
    np.testing.assert_allclose(new, [bag[0].mean(), trees[0].mean()], rtol=1e-5)
    # Held-out stacked logits still separate the classes: bag and tabular both say the label,
    # and the stacker weighs both.
    logits = head.logits(ids, inputs)
    assert logits[y == 1].mean() > logits[y == 0].mean() + 1.0
    assert head.weights[0] > 0 and head.weights[1] > 0


def test_without_a_tabular_input_the_head_is_the_bag_regression_alone() -> None:
    inputs, y, ids = _toy(tabular=False)
    head = fit_bag_head(inputs, y, ids, TERMS, _protos(), step=0.1)
    assert head.trees == [] and head.weights[1] == 0.0
    parts = head.parts(ids, inputs)
    assert np.all(parts[:, 1] == 0.0)
    z = (parts[:, 0] - head.stack[0]) / head.stack[1]
    np.testing.assert_allclose(head.logits(ids, inputs), z * head.weights[0] + head.weights[2])


def test_the_shift_follows_the_label_axis_and_keeps_unit_norm() -> None:
    inputs, y, ids = _toy()
    head = fit_bag_head(inputs, y, ids, TERMS, _protos(), step=0.1)
    u = torch.nn.functional.normalize(torch.randn(len(ids), 8), dim=-1)
    logits = head.logits(ids, inputs)
    out = head.apply(u, logits)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(len(ids)))
    moved = (out - u) @ torch.as_tensor(head.axis)
    z = (logits - head.mu) / head.sd
    # Users with a high logit move towards the class-1 prototype, low ones away from it.
    assert float(np.corrcoef(moved.numpy(), z)[0, 1]) > 0.9
    assert isinstance(head.apply(u.numpy(), logits), np.ndarray)


def test_a_head_needs_two_users_of_each_class() -> None:
    inputs, _, ids = _toy(10)
    y = np.r_[np.ones(1), np.zeros(9)].astype(int)
    assert fit_bag_head(inputs, y, ids, TERMS, _protos(), step=0.1) is None


def test_a_saved_head_loads_to_the_same_vectors(tmp_path: Path) -> None:
    inputs, y, ids = _toy()
    head = fit_bag_head(inputs, y, ids, TERMS, _protos(), step=0.1)
    head.save(tmp_path)
    back = BagHead.load(tmp_path)
    u = torch.nn.functional.normalize(torch.randn(len(ids), 8), dim=-1)
    for who in (ids, [f"new{i}" for i in range(len(ids))]):
        np.testing.assert_allclose(back.logits(who, inputs), head.logits(who, inputs), rtol=1e-6)
        torch.testing.assert_close(back.apply(u, back.logits(who, inputs)),
                                   head.apply(u, head.logits(who, inputs)))  # fmt: skip
    assert BagHead.load(tmp_path / "nothing") is None
    # A head without trees (no tabular input) round-trips too.
    inputs, y, ids = _toy(tabular=False)
    bare = fit_bag_head(inputs, y, ids, TERMS, _protos(), step=0.1)
    bare.save(tmp_path)
    np.testing.assert_allclose(BagHead.load(tmp_path).logits(ids, inputs), bare.logits(ids, inputs))


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
    assert adapter.head.trees  # the tiny model has a tabular input: the trees are in the head
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
    bags = [emb.table.inputs[r].head_input() for r in emb.rows(users)]
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


@pytest.mark.parametrize("enforce", [True, False])
def test_the_guard_judges_a_head_and_drops_it_only_if_told(coupon_split, enforce) -> None:
    from qanchor.tune.adapters import ScenarioAdapter
    from qanchor.tune.guard import guard
    from qanchor.tune.heads import fit_heads

    emb, train, val, coupon = coupon_split
    adapter = ScenarioAdapter(*coupon, torch.zeros(0, 32), _protos())
    loaded = dict(zip(emb.user_ids, (x.head_input() for x in emb.table.inputs), strict=True))
    fit_heads(emb, [adapter], train, loaded, step=0.1, seed=0)
    assert adapter.head is not None
    cfg = replace(resolve(TuneConfig, "tiny"), bag_head_guard=enforce)
    (out,) = guard(emb, [adapter], train, val, cfg)
    verdict = out.meta["val_guard"]["bag_head"]
    assert set(verdict["val_auc"]) == {"with", "without"}
    raises = verdict["val_auc"]["with"] > verdict["val_auc"]["without"]
    assert verdict["kept"] == (raises or not enforce)
    assert (out.head is not None) == verdict["kept"]


@pytest.mark.parametrize("enforce", [True, False])
def test_a_head_that_cannot_raise_the_val_auc_is_dropped_only_if_enforced(enforce) -> None:
    from qanchor.tune.adapters import ScenarioAdapter
    from qanchor.tune.heads import judge_head

    inputs, y, ids = _toy()
    adapter = ScenarioAdapter("s", "q", torch.zeros(0, 4), _protos())
    adapter.head = fit_bag_head(inputs[:80], y[:80], ids[:80], TERMS, _protos(), step=0.1)
    # Vectors whose first coordinate is the label: the probe's val AUC is already 1.0.
    x = np.random.default_rng(0).normal(0, 0.1, (len(y), 8))
    x[:, 0] += y
    frame = pd.DataFrame({"label": y})
    train, val = (list(range(80)), frame[:80]), (list(range(80, 120)), frame[80:])
    judge_head(adapter, x, ids, inputs, train, val, seed=0, enforce=enforce)
    verdict = adapter.meta["val_guard"]["bag_head"]
    assert verdict["val_auc"]["without"] == 1.0  # so no head can raise it
    assert verdict["kept"] is (not enforce)
    assert (adapter.head is None) is enforce


def test_heads_fitted_side_by_side_equal_one_at_a_time(
    coupon_split, built_tiny, monkeypatch
) -> None:
    from threading import get_ident

    from threadpoolctl import threadpool_info

    from qanchor.infer.threads import torch_threads
    from qanchor.tune import heads
    from qanchor.tune.adapters import ScenarioAdapter

    emb = coupon_split[0]
    labels = pd.read_parquet(built_tiny / "labels.parquet")
    train = labels[labels["split"] == "train"]
    names = sorted(train["scenario"].unique())[:4]
    loaded = dict(zip(emb.user_ids, (x.head_input() for x in emb.table.inputs), strict=True))
    seen: set[int] = set()

    def spy(*args, **kwargs):
        seen.add(get_ident())
        return fit_bag_head(*args, **kwargs)

    monkeypatch.setattr(heads, "fit_bag_head", spy)
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    fitted = {}
    # (torch threads, memory budget for two fits side by side, threads expected to fit them)
    for cores, budget, used in ((1, heads.SIDE_BY_SIDE_BYTES, 1), (2, heads.SIDE_BY_SIDE_BYTES, 2),
                                (2, 0, 1)):  # fmt: skip
        seen.clear()
        monkeypatch.setattr(heads, "SIDE_BY_SIDE_BYTES", budget)
        adapters = [ScenarioAdapter(s, s, torch.zeros(0, 32), _protos()) for s in names]
        with torch_threads(cores):
            heads.fit_heads(emb, adapters, train, loaded, step=0.1, seed=0)
        assert len(seen) == used  # one per core, unless two fits would not fit in the budget
        fitted[(cores, budget)] = adapters
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas
    first, *others = fitted.values()
    for one, two in ((a, b) for other in others for a, b in zip(first, other, strict=True)):
        assert one.head is not None and two.head is not None
        np.testing.assert_allclose(one.head.coef, two.head.coef, atol=1e-8)
        np.testing.assert_allclose(one.head.weights, two.head.weights, atol=1e-8)
        assert one.head.trees == two.head.trees
        assert one.meta["bag_head"] == two.meta["bag_head"]
