"""The verdict that opens report.md, its numbers in eval_details.json, and the preset it names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qanchor.cli import build_parser
from qanchor.config import overrides_from_args, resolve
from qanchor.eval.evaluate import EvalConfig, random_parts
from qanchor.eval.metrics import paired_bootstrap
from qanchor.eval.probe import ProbeResults
from qanchor.eval.report import add_details, write_metrics, write_report
from qanchor.eval.verdict import verdict

SCENARIOS = ["a", "b", "c"]


def _results(signals: dict[str, float], n: int = 200) -> dict[str, ProbeResults]:
    """Models scoring the same test users: ``signal * y + shared noise + own noise``."""
    rng = np.random.default_rng(0)
    labels = {s: (rng.random(n) < 0.3).astype(int) for s in SCENARIOS}
    shared = {s: rng.normal(size=n) for s in SCENARIOS}
    out = {}
    for name, signal in signals.items():
        res = ProbeResults()
        for s, y in labels.items():
            res[s] = (y, signal * y + shared[s] + 0.5 * rng.normal(size=n))
        out[name] = res
    return out


def test_qanchor_winner_is_measured_against_the_best_baseline(tmp_path: Path) -> None:
    results = _results({"qanchor_tuned": 2.0, "qanchor_base": 1.5, "tfidf_lr": 1.2,
                        "gbdt_features": 0.6})  # fmt: skip
    metrics = write_metrics(tmp_path, "toy", SCENARIOS, results)
    v = verdict(metrics, results, preset="small", random_parts=[], n_boot=500, seed=0)
    m = metrics["models"]
    assert v["winner"] == "qanchor_tuned" and v["compared"] == "tfidf_lr"
    assert v["margin"] == pytest.approx(m["qanchor_tuned"]["mean_auc"] - m["tfidf_lr"]["mean_auc"])
    expected = paired_bootstrap(results["qanchor_tuned"], results["tfidf_lr"], 500, 0)
    assert v["ci95"] == [expected["low"], expected["high"]] and expected["low"] > 0
    line = v["line"]
    assert line.startswith("**Verdict:** `qanchor_tuned` wins with mean AUC ")
    assert f"{v['margin']:.4f} ahead of the best baseline `tfidf_lr`" in line
    assert f"95% CI of the margin [{expected['low']:.4f}, {expected['high']:.4f}]" in line
    assert "500 resamples, 3 scenarios" in line and "Preset `small`." in line
    assert "Warning" not in line and "no clear winner" not in line


def test_a_winning_baseline_reports_how_far_we_trail(tmp_path: Path) -> None:
    results = _results({"qanchor_tuned": 0.6, "qanchor_base": 1.0})
    rng = np.random.default_rng(1)
    # A near-copy of qanchor_base with a slight edge: tfidf_lr wins, but not clearly.
    results["tfidf_lr"] = ProbeResults(
        {
            s: (y, x + 0.05 * y + 0.2 * rng.normal(size=len(y)))
            for s, (y, x) in results["qanchor_base"].items()
        }
    )
    metrics = write_metrics(tmp_path, "toy", SCENARIOS, results)
    v = verdict(metrics, results, preset=None, random_parts=[], n_boot=300)
    assert v["winner"] == "tfidf_lr" and v["compared"] == "qanchor_base"
    assert "the best qanchor model `qanchor_base` trails it by" in v["line"]
    low, high = v["ci95"]
    assert low <= v["margin"] <= high
    assert low < 0 < high and "includes 0: no clear winner" in v["line"]  # close call
    assert "Preset: none (config defaults)." in v["line"]


def test_random_models_get_a_visible_warning(tmp_path: Path) -> None:
    results = _results({"qanchor_tuned": 1.0, "text_mean_pool": 0.5})
    metrics = write_metrics(tmp_path, "toy", SCENARIOS, results)
    parts = random_parts({"backbone": "tiny", "encoder": "default"})
    assert parts == ["backbone `tiny`"] and random_parts({"backbone": "default"}) == []
    v = verdict(metrics, results, preset="tiny", random_parts=parts, n_boot=100)
    assert "Preset `tiny`." in v["line"]
    assert "\n\n> **Warning: random models** (backbone `tiny`): " in v["line"]
    assert v["random_models"] == parts


def test_verdict_opens_the_report_and_lands_in_details_not_metrics(tmp_path: Path) -> None:
    results = _results({"tfidf_lr": 1.0, "qanchor_base": 0.8, "text_mean_pool_recent": 0.3})
    run = tmp_path / "manual__2026-12-04"  # a run directory: built/, model/, eval/
    (run / "built").mkdir(parents=True)
    out = run / "eval"
    metrics = write_metrics(out, "/data/sets/toy", SCENARIOS, results)
    assert list(metrics["models"]) == ["qanchor_base", "tfidf_lr", "text_mean_pool_recent"]
    v = verdict(metrics, results, preset="paper", random_parts=[], n_boot=200)
    add_details(out, verdict=v)
    text = write_report(out, metrics, results, verdict=v).read_text()
    title, about, first = text.split("\n\n")[:3]
    assert title == "# Evaluation report: toy" and first == v["line"]
    assert about == (
        "Data `toy` · preset `paper` · run `manual__2026-12-04` (input: `/data/sets/toy`)."
    )
    details = json.loads((out / "eval_details.json").read_text())
    assert details["verdict"]["winner"] == "tfidf_lr" and details["verdict"]["preset"] == "paper"
    assert details["verdict"]["ci95"] == pytest.approx(v["ci95"])
    assert set(details["models"]) == set(results)  # write_metrics' details kept
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics and set(on_disk) == {"dataset", "scenarios", "models"}
    for m in on_disk["models"].values():
        assert set(m) == {"mean_auc", "mean_ks", "per_scenario"}


def test_no_comparison_without_the_other_side(tmp_path: Path) -> None:
    results = _results({"tfidf_lr": 1.0, "gbdt_features": 0.5})
    metrics = write_metrics(tmp_path, "toy", SCENARIOS, results)
    v = verdict(metrics, results, preset="small", random_parts=[])
    assert v["winner"] == "tfidf_lr" and v["compared"] is None and v["ci95"] is None
    assert "no qanchor model was scored to compare with" in v["line"]


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_the_preset_is_recorded_by_cli_and_run(preset: str) -> None:
    # `qanchor run` and the orchestrated stages resolve the config with the preset name...
    assert resolve(EvalConfig, preset).preset == preset
    # ... and `qanchor evaluate --preset X` does it through the CLI flags.
    args = build_parser().parse_args(
        ["evaluate", "--model", "m", "--data", "d", "--out", "o", "--preset", preset]
    )
    cfg = resolve(EvalConfig, args.preset, args.config, overrides_from_args(args, EvalConfig))
    assert cfg.preset == preset
    assert "tfidf_lr" in cfg.baselines and "text_mean_pool_recent" in cfg.baselines
    assert resolve(EvalConfig).preset is None
