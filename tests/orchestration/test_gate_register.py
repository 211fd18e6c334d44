"""Gate and register components on a real store: a worse candidate is neither registered nor promoted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qanchor import registry
from qanchor.orchestrate.kfp_runner import run_stage
from qanchor.orchestrate.stages import RunPaths

NAME = "qanchor-gate-test"


def candidate(root: Path, model: Path, auc: float) -> Path:
    """A run directory holding a trained model and an evaluation with the given mean AUC."""
    p = RunPaths(root)
    shutil.copytree(model, p.model)
    # Each candidate is another model (the registry versions by content, not by metrics).
    (p.model / "candidate.txt").write_text(root.name)
    p.eval.mkdir(parents=True)
    per = {"s1": {"auc": auc, "ks": 0.3}}
    metrics = {"dataset": "d", "scenarios": ["s1"],
               "models": {"qanchor_tuned": {"mean_auc": auc, "mean_ks": 0.3, "per_scenario": per}}}  # fmt: skip
    (p.eval / "metrics.json").write_text(json.dumps(metrics))
    return root


def gate_then_register(run: Path) -> tuple[dict, dict]:
    decision = run_stage("gate", run, tolerance=0.01, model_name=NAME)
    return decision, run_stage("register", run, model_name=NAME)


def test_worse_candidate_is_not_registered_or_promoted(tiny_model: Path, tmp_path: Path) -> None:
    first, registered = gate_then_register(candidate(tmp_path / "a", tiny_model, 0.70))
    assert first["passed"] and registered["registered"]
    serving = registered["tag"]
    assert registry.promoted(NAME).tag == serving

    decision, outcome = gate_then_register(candidate(tmp_path / "b", tiny_model, 0.60))
    assert not decision["passed"] and "below serving 0.7000" in decision["reason"]
    assert decision["serving_tag"] == serving
    assert outcome == {"registered": False, "reason": decision["reason"]}
    assert [v.tag for v in registry.versions(NAME)] == [serving]  # nothing new in the store
    assert registry.promoted(NAME).tag == serving

    decision, outcome = gate_then_register(candidate(tmp_path / "c", tiny_model, 0.695))
    assert decision["passed"] and outcome["registered"]  # within tolerance: replaces it
    assert registry.promoted(NAME).tag == outcome["tag"] != serving
    assert len(registry.versions(NAME)) == 2
