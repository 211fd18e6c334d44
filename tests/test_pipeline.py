"""`qanchor run --preset tiny` end to end on a small synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

from qanchor.cli import main
from qanchor.data.synth import SynthConfig, synth


def test_run_tiny_end_to_end(tmp_path: Path, capsys) -> None:
    raw = synth(SynthConfig(users=150, seed=2), tmp_path / "raw")
    out = tmp_path / "run"
    assert main(["run", "--data", str(raw), "--out", str(out), "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert f"metrics: {out / 'eval'}/metrics.json" in printed
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {
        "qanchor_tuned",
        "qanchor_base",
        "gbdt_features",
        "text_mean_pool",
        "llm_untrained",
    }
    assert len(metrics["scenarios"]) >= 10
    for model in metrics["models"].values():
        assert model["per_scenario"] and 0.0 <= model["mean_auc"] <= 1.0
    adapters = sorted(p.name for p in (out / "model" / "scenarios").iterdir())
    assert adapters == sorted(metrics["scenarios"])
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "roc_curves.png").is_file()
    run = json.loads((out / "run.json").read_text())
    assert set(run["seconds"]) == {"build", "pretrain", "tune", "evaluate"}
