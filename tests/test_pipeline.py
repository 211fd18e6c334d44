"""`qanchor run --preset tiny --feature-repo feature_repo` end to end (what `make run` runs)."""

from __future__ import annotations

import json
from pathlib import Path

from qanchor.cli import main
from qanchor.data.synth import SynthConfig, synth

REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def test_run_tiny_end_to_end(tmp_path: Path, capsys) -> None:
    raw = synth(SynthConfig(users=150, seed=2), tmp_path / "raw")
    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(raw),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--feature-repo",
        str(REPO),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"metrics: {out / 'eval'}/metrics.json" in printed
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {
        "qanchor_tuned",
        "qanchor_base",
        "tfidf_lr",
        "gbdt_features",
        "text_mean_pool",
        "text_mean_pool_recent",
        "llm_untrained",
    }
    assert len(metrics["scenarios"]) >= 10
    for model in metrics["models"].values():
        assert model["per_scenario"] and 0.0 <= model["mean_auc"] <= 1.0
    adapters = sorted(p.name for p in (out / "model" / "scenarios").iterdir())
    assert adapters == sorted(metrics["scenarios"])
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "roc_curves.png").is_file()
    # The verdict opens the report, names the preset and warns that tiny models are random.
    verdict = json.loads((out / "eval" / "eval_details.json").read_text())["verdict"]
    report = (out / "eval" / "report.md").read_text()
    assert report.split("\n\n")[1].startswith(f"**Verdict:** `{verdict['winner']}` wins")
    assert verdict["preset"] == "tiny" and "Preset `tiny`." in report
    assert "Warning: random models" in report and verdict["ci95"] is not None
    run = json.loads((out / "run.json").read_text())
    assert set(run["seconds"]) == {"build", "features", "pretrain", "tune", "evaluate"}
    assert run["feature_repo"] == str(REPO)
    assert (out / "built" / "feature_store" / "online_store.db").is_file()
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["pretrain"]["feature_repo"] == str(REPO)  # pretraining read the store
