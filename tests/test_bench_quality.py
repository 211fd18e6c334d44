"""The quality benchmark's aggregation and tables, on made-up metrics (no model is run)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.quality import merge, parse_args
from benchmarks.quality_tables import render, summarize, summarize_dataset

SCEN = ["churn", "loan"]


def metrics(aucs: dict[str, tuple[float, float]]) -> dict:
    """A metrics.json dict from model -> (AUC of churn, AUC of loan), with KS = AUC - 0.5."""
    models = {}
    for model, pair in aucs.items():
        per = {s: {"auc": a, "ks": a - 0.5} for s, a in zip(SCEN, pair, strict=True)}
        models[model] = {"mean_auc": sum(pair) / 2, "mean_ks": sum(p["ks"] for p in per.values()) / 2,
                         "per_scenario": per}  # fmt: skip
    return {"dataset": "d", "scenarios": SCEN, "models": models}


def run(dataset: str, seed: int, aucs: dict, wall: float = 100.0) -> dict:
    return {
        "dataset": dataset,
        "seed": seed,
        "wall_s": wall,
        "bf16": False,
        "metrics": metrics(aucs),
    }


RUNS = [
    run("synthetic", 0, {"qanchor_tuned": (0.80, 0.70), "qanchor_base": (0.70, 0.70),
                         "gbdt_features": (0.74, 0.70), "text_mean_pool": (0.60, 0.60)}),
    run("synthetic", 1, {"qanchor_tuned": (0.78, 0.70), "qanchor_base": (0.70, 0.66),
                         "gbdt_features": (0.74, 0.66), "text_mean_pool": (0.80, 0.60)}),
    run("movielens-100k", 0, {"qanchor_tuned": (0.60, 0.60), "gbdt_features": (0.64, 0.60)}),
]  # fmt: skip


def test_summary_over_seeds_orders_models_and_pairs_the_difference() -> None:
    s = summarize_dataset([r for r in RUNS if r["dataset"] == "synthetic"])
    assert s["seeds"] == [0, 1]
    assert s["order"] == ["qanchor_tuned", "gbdt_features", "qanchor_base", "text_mean_pool"]
    tuned = s["models"]["qanchor_tuned"]["auc"]
    assert tuned["mean"] == pytest.approx(0.745) and tuned["n"] == 2
    assert tuned["sd"] == pytest.approx(0.01 / 2**0.5)  # sample sd of 0.75 and 0.74
    # text_mean_pool beat gbdt on seed 1, but the best baseline is chosen on the mean.
    assert s["best_baseline"] == "gbdt_features"
    diff = s["tuned_minus_best"]["auc"]  # per seed: 0.75-0.72, 0.74-0.70
    assert diff["mean"] == pytest.approx(0.035) and diff["sd"] == pytest.approx(0.01 / 2**0.5)
    assert s["per_scenario"]["churn"]["qanchor_tuned"] == pytest.approx(0.79)
    assert s["per_scenario"]["loan"]["text_mean_pool"] == pytest.approx(0.60)
    one = summarize_dataset([r for r in RUNS if r["dataset"] == "movielens-100k"])
    assert one["models"]["gbdt_features"]["auc"]["sd"] is None  # one seed has no spread
    assert one["tuned_minus_best"]["auc"]["mean"] == pytest.approx(-0.02)


def test_markdown_has_main_tables_and_no_ablation_for_one_tag() -> None:
    variants = {"default": {"preset": "small", "overrides": {}, "runs": RUNS}}
    md = render(variants, {"cpu_model": "Test CPU", "threads": 2})
    assert "Test CPU" in md and "`default (small)`" in md
    assert md.index("### synthetic") < md.index("### movielens-100k")
    assert "| qanchor_tuned | 0.7450 ± 0.0071 | " in md
    assert "| gbdt_features | 0.6200 ± – | " in md  # movielens, one seed
    assert "`qanchor_tuned` − `gbdt_features` (best baseline): AUC +0.0350 ± 0.0071" in md
    assert "| churn | 0.7900 | 0.7400 | 0.7000 | 0.7000 |" in md
    assert "wall time per run: 100 s, 100 s" in md and "bf16 autocast: off" in md
    assert "Ablations" not in md


def test_ablation_table_side_by_side() -> None:
    worse = [run("synthetic", 0, {"qanchor_tuned": (0.70, 0.70), "gbdt_features": (0.74, 0.70)})]
    variants = {
        "no_skip": {"preset": "small", "overrides": {"pretrain": {"user_skip": "false"}}, "runs": worse},
        "default": {"preset": "small", "overrides": {}, "runs": RUNS},
    }  # fmt: skip
    md = render(variants, {})
    assert md.index("### synthetic") < md.index("### Ablations")
    assert "| dataset | model | default (small) | no_skip (small: pretrain.user_skip=false) |" in md
    assert "| synthetic | qanchor_tuned | 0.7450 (2) | 0.7000 (1) |" in md
    assert "| movielens-100k | qanchor_tuned | 0.6000 (1) | – |" in md
    assert "| synthetic | qanchor_tuned − best baseline | +0.0350 ± 0.0071 | -0.0200 ± – |" in md
    assert set(summarize(variants)) == {"no_skip", "default"}


def test_merge_accumulates_seeds_and_replaces_changed_settings() -> None:
    first = merge({}, "default", {"preset": "small", "overrides": {}, "runs": RUNS[:1]})
    both = merge(first, "default", {"preset": "small", "overrides": {}, "runs": RUNS[1:]})
    assert [(r["dataset"], r["seed"]) for r in both["default"]["runs"]] == [
        ("synthetic", 0), ("synthetic", 1), ("movielens-100k", 0)]  # fmt: skip
    other = merge(both, "default", {"preset": "tiny", "overrides": {}, "runs": RUNS[:1]})
    assert len(other["default"]["runs"]) == 1  # another preset does not mix with the old runs
    tagged = merge(
        both, "x", {"preset": "small", "overrides": {"tune": {"steps": "1"}}, "runs": []}
    )
    assert set(tagged) == {"default", "x"}


def test_args_need_a_tag_for_overrides() -> None:
    args = parse_args(["--seeds", "0,2", "--set", "pretrain.lm_weight=0", "--tag", "no_lm"])
    assert args.seeds == [0, 2] and args.overrides == {"pretrain": {"lm_weight": "0"}}
    assert args.datasets == ["synthetic", "movielens-100k", "cdnow"]
    for bad in (["--set", "pretrain.lm_weight=0"], ["--set", "lm_weight=0", "--tag", "t"],
                ["--datasets", "imdb"]):  # fmt: skip
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert isinstance(args, argparse.Namespace)
