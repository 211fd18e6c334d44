"""Soft-prompt tuning on a tiny pretrained model: artifacts, reload, sharing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qanchor.config import resolve
from qanchor.data.contract import Scenario
from qanchor.infer.engine import Embedder
from qanchor.infer.threads import torch_threads
from qanchor.tune.adapters import ScenarioAdapter, load_adapters
from qanchor.tune.clusters import cluster_scenarios
from qanchor.tune.config import TuneConfig
from qanchor.tune.guard import guard
from qanchor.tune.prompt import groups_for, tune_model


@pytest.fixture(scope="module")
def tuned(tiny_model: Path, built_tiny: Path, tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("tuned") / "model"
    shutil.copytree(tiny_model, model)
    tune_model(
        model,
        built_tiny,
        # The guard could drop a prompt of this random model; these tests are about the prompts.
        resolve(TuneConfig, "tiny", overrides={"share": "none", "val_guard": False}),
        ["cash_loan_default", "churn_next_month"],
    )
    return model


def test_adapters_are_small_files_beside_the_model(tuned: Path) -> None:
    adapters = load_adapters(tuned)
    assert [a.name for a in adapters] == ["cash_loan_default", "churn_next_month"]
    for a in adapters:
        meta = json.loads((tuned / "scenarios" / a.name / "meta.json").read_text())
        files = {f.name: f.stat().st_size for f in (tuned / "scenarios" / a.name).iterdir()}
        assert files["adapter.safetensors"] < 10_000
        # meta.json is written after the count: the bytes are the tensors the adapter adds.
        assert meta["bytes"] == files["adapter.safetensors"] + files["bag_head.npz"]
        assert a.prompt.shape[0] == 2 and a.prototypes.shape == (2, 16)
        torch.testing.assert_close(a.prototypes.norm(dim=-1), torch.ones(2))
        assert np.isfinite(meta["final_loss"])


def test_reloaded_adapters_reproduce_embeddings(tuned: Path, built_tiny: Path) -> None:
    snaps = pd.read_parquet(built_tiny / "snapshots.parquet")
    a = Embedder.from_dir(tuned)
    a.load_users(snaps, pd.read_parquet(built_tiny / "profiles.parquet"))
    users = a.table.user_ids[:5]
    tuned_vecs = a.embed(users, ["cash_loan_default", "churn_next_month"])
    base_vecs = a.embed(users, ["cash_loan_default"], tuned=False)
    b = Embedder.from_dir(tuned)
    b.load_users(snaps, pd.read_parquet(built_tiny / "profiles.parquet"))
    np.testing.assert_allclose(
        b.embed(users, ["cash_loan_default", "churn_next_month"]), tuned_vecs, atol=1e-6
    )
    assert not np.allclose(tuned_vecs[:, 0], base_vecs[:, 0])  # the prompt changes the embedding


def test_val_guard_records_its_verdict_and_a_dropped_prompt_serves_the_base(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    # Scenarios whose tiny validation split holds both classes; no bag heads (a kept head would
    # shift the base vector of a dropped prompt, tested in test_bag_head).
    cfg = resolve(TuneConfig, "tiny", overrides={"share": "none", "bag_head_step": 0})
    tune_model(model, built_tiny, cfg,
               ["coupon_redemption", "daily_active_next_month"])  # fmt: skip
    snaps = pd.read_parquet(built_tiny / "snapshots.parquet")
    emb = Embedder.from_dir(model)
    emb.load_users(snaps, pd.read_parquet(built_tiny / "profiles.parquet"))
    users = emb.table.user_ids[:6]
    for a in load_adapters(model):
        verdict = a.meta["val_guard"]
        assert verdict["kept"] == (verdict["val_auc"]["tuned"] > verdict["val_auc"]["base"])
        assert a.prompt.shape[0] == (2 if verdict["kept"] else 0)
        same = np.allclose(emb.embed(users, [a.name]), emb.embed(users, [a.name], tuned=False))
        assert same != verdict["kept"]


def test_val_guard_drops_a_prompt_that_does_not_beat_the_query(coupon_split) -> None:
    emb, train, val, coupon = coupon_split
    # An empty prompt is the bare query: it ties with the base and a tie is not an improvement.
    tied = ScenarioAdapter(*coupon, torch.zeros(0, 32), torch.eye(2, 16))
    (out,) = guard(emb, [tied], train, val, resolve(TuneConfig, "tiny"))
    assert out.meta["val_guard"]["kept"] is False
    assert out.prompt.shape == (0, 32) and out.prototypes.shape == (2, 16)
    torch.testing.assert_close(out.prototypes.norm(dim=-1), torch.ones(2))


def test_val_guard_embeds_at_most_guard_users_per_split(coupon_split) -> None:
    emb, train, val, coupon = coupon_split
    adapter = ScenarioAdapter(*coupon, torch.zeros(0, 32), torch.eye(2, 16))
    n = len(val)  # the train split is larger: only it is cut
    assert train["user_id"].nunique() > n
    cfg = resolve(TuneConfig, "tiny", overrides={"guard_users": n})
    (out,) = guard(emb, [adapter], train, val, cfg)
    assert out.meta["val_guard"]["users"] == {"train": n, "val": n}
    cfg = resolve(TuneConfig, "tiny", overrides={"guard_users": 0})  # 0: every labelled user
    (out,) = guard(emb, [adapter], train, val, cfg)
    assert out.meta["val_guard"]["users"] == {"train": train["user_id"].nunique(), "val": n}


def test_prompts_train_on_a_sample_of_train_users_and_heads_on_all(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    over = {"share": "none", "val_guard": False, "train_users": 10}
    tune_model(
        model, built_tiny, resolve(TuneConfig, "tiny", overrides=over), ["cash_loan_default"]
    )
    (a,) = load_adapters(model)
    labels = pd.read_parquet(built_tiny / "labels.parquet")
    train = labels[(labels["split"] == "train") & (labels["scenario"] == a.name)]
    assert train["user_id"].nunique() > 10
    assert a.meta["train_users"] == 10  # the prompt's steps drew from 10 users
    assert a.meta["bag_head"]["train_users"] == train["user_id"].nunique()


def test_unknown_scenario_is_a_clear_error(tiny_model: Path, built_tiny: Path) -> None:
    from qanchor.errors import QAnchorError

    with pytest.raises(QAnchorError, match="unknown scenarios \\['nope'\\]"):
        tune_model(tiny_model, built_tiny, resolve(TuneConfig, "tiny"), ["nope"])


def fake_queries() -> dict[str, str]:
    return {
        "loan": "repay a loan?",
        "credit": "overspend credit?",
        "trip": "book a trip?",
        "hotel": "book a hotel?",
    }


def by_topic(texts: list[str]) -> np.ndarray:
    """Hand-made query vectors: money questions along x, travel questions along y."""
    return np.array([[1.0, 0.1] if ("loan" in t or "credit" in t) else [0.1, 1.0] for t in texts])


def test_clusters_group_similar_queries() -> None:
    ids = cluster_scenarios(fake_queries(), 2, by_topic)
    assert ids["loan"] == ids["credit"] != ids["trip"] == ids["hotel"]


def test_sharing_modes() -> None:
    scen = [Scenario(n, q) for n, q in fake_queries().items()]
    positives = {"loan": 500, "credit": 3, "trip": 4, "hotel": 800}
    names = lambda groups: sorted(sorted(s.name for s in g) for g in groups)  # noqa: E731
    assert names(groups_for(scen, positives, TuneConfig(share="none"), by_topic)) == [
        ["credit"],
        ["hotel"],
        ["loan"],
        ["trip"],
    ]
    assert names(
        groups_for(scen, positives, TuneConfig(share="cluster", n_clusters=2), by_topic)
    ) == [["credit", "loan"], ["hotel", "trip"]]
    auto = TuneConfig(share="auto", n_clusters=2, min_positives=50)
    assert names(groups_for(scen, positives, auto, by_topic)) == [
        ["credit"],
        ["hotel"],
        ["loan"],
        ["trip"],
    ]
    auto1 = TuneConfig(share="auto", n_clusters=1, min_positives=50)
    assert names(groups_for(scen, positives, auto1, by_topic)) == [
        ["credit", "trip"],
        ["hotel"],
        ["loan"],
    ]


def test_a_one_class_scenario_gets_no_adapter(
    tiny_model: Path, built_tiny: Path, tmp_path: Path, caplog
) -> None:
    """A scenario whose training users hold one class serves its query alone, with a warning."""
    built = shutil.copytree(built_tiny, tmp_path / "built")
    labels = pd.read_parquet(built / "labels.parquet")
    one = (labels["scenario"] == "churn_next_month") & (labels["split"] == "train")
    labels.loc[one, "label"] = 0
    labels.to_parquet(built / "labels.parquet", index=False)
    model = shutil.copytree(tiny_model, tmp_path / "model")
    cfg = resolve(TuneConfig, "tiny", overrides={"share": "none"})
    with caplog.at_level("WARNING"):
        adapters = tune_model(model, built, cfg, ["cash_loan_default", "churn_next_month"])
    assert [a.name for a in adapters] == ["cash_loan_default"]
    assert not (model / "scenarios" / "churn_next_month").exists()
    assert "not tuning ['churn_next_month']: the train split holds one class" in caplog.text


@pytest.mark.parametrize("name", ["../outside", "a/b", "", ".hidden"])
def test_an_adapter_path_never_leaves_the_model(tmp_path: Path, name: str) -> None:
    from qanchor.errors import ContractError
    from qanchor.tune.adapters import adapter_dir

    with pytest.raises(ContractError, match="invalid scenario name"):
        adapter_dir(tmp_path, name)
    assert adapter_dir(tmp_path, "churn_30d.v2") == tmp_path / "scenarios" / "churn_30d.v2"


def test_scenarios_tuned_side_by_side_equal_one_at_a_time(
    tiny_model: Path, built_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On two torch threads each scenario group tunes in its own thread (one torch thread):
    the same adapters as one after the other, to float rounding."""
    import threading

    from qanchor.tune import prompt

    cfg = resolve(TuneConfig, "tiny", overrides={"share": "none", "val_guard": False})
    threads, tune_group = {}, prompt.tune_group

    def spy(emb, group, *args, **kwargs):  # noqa: ANN001, ANN202
        threads.setdefault(len(out), set()).add(threading.current_thread().name)
        return tune_group(emb, group, *args, **kwargs)

    monkeypatch.setattr(prompt, "tune_group", spy)
    out = {}
    for n in (1, 2):
        model = tmp_path / f"threads{n}"
        shutil.copytree(tiny_model, model)
        with torch_threads(n):
            out[n] = tune_model(model, built_tiny, cfg, ["cash_loan_default", "churn_next_month"])
    assert [len(threads[0]), len(threads[1])] == [1, 2]
    assert [a.name for a in out[2]] == ["cash_loan_default", "churn_next_month"]
    for one, two in zip(out[1], out[2], strict=True):
        torch.testing.assert_close(two.prompt, one.prompt, atol=1e-4, rtol=0)
        torch.testing.assert_close(two.prototypes, one.prototypes, atol=1e-4, rtol=0)
    assert not torch.allclose(out[2][0].prompt, out[2][1].prompt)  # two different scenarios
