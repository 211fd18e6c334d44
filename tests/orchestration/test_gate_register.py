"""Gate and register components on a real store and real evaluations: the served model is
re-scored on the candidate's test users and scenarios, and a rejected candidate is neither
registered nor promoted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.runner import run_stage
from qanchor import registry
from qanchor.config import resolve
from qanchor.eval.evaluate import EvalConfig, evaluate
from qanchor.monitoring.alert import SmtpSettings
from qanchor.orchestrate.outcome import announce
from qanchor.orchestrate.rundir import RunPaths

NAME = "qanchor-gate-test"
SCENARIOS = ["coupon_redemption", "daily_active_next_month"]


@pytest.fixture(scope="module")
def built_two(built_tiny: Path, tmp_path_factory) -> Path:
    """The tiny build cut to two scenarios (a run triggered with a scenario list)."""
    root = tmp_path_factory.mktemp("two") / "built"
    shutil.copytree(built_tiny, root)
    import pandas as pd
    import yaml

    labels = pd.read_parquet(root / "labels.parquet")
    labels[labels["scenario"].isin(SCENARIOS)].to_parquet(root / "labels.parquet", index=False)
    scen = [
        s for s in yaml.safe_load((root / "scenarios.yaml").read_text()) if s["name"] in SCENARIOS
    ]
    (root / "scenarios.yaml").write_text(yaml.safe_dump(scen))
    return root


def candidate(root: Path, model: Path, built: Path, recorded_auc: float | None = None) -> Path:
    """A run directory: the model (made another model by a marker file), its build and a real
    evaluation; ``recorded_auc`` overwrites the recorded mean (a model evaluated elsewhere)."""
    p = RunPaths(root)
    shutil.copytree(model, p.model)
    (p.model / "candidate.txt").write_text(root.name)
    p.built.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(built, p.built)
    cfg = resolve(EvalConfig, "tiny", overrides={"baselines": ["tfidf_lr"]})
    evaluate(p.model, p.built, p.eval, cfg)
    if recorded_auc is not None:
        metrics = json.loads((p.eval / "metrics.json").read_text())
        metrics["models"]["qanchor_tuned"]["mean_auc"] = recorded_auc
        (p.eval / "metrics.json").write_text(json.dumps(metrics))
    return root


def gate_then_register(run: Path, tolerance: float = 0.01) -> tuple[dict, dict]:
    decision = run_stage("gate", run, tolerance=tolerance, model_name=NAME)
    return decision, run_stage("register", run, model_name=NAME)


def test_the_gate_rescores_the_served_model_on_the_candidates_users(
    tiny_model: Path, built_tiny: Path, built_two: Path, tmp_path: Path, smtp_server
) -> None:
    # Week 1: a model evaluated on all 12 scenarios of its build, recorded mean 0.99.
    first, registered = gate_then_register(candidate(tmp_path / "a", tiny_model, built_tiny, 0.99))
    assert first["passed"] and "first model" in first["reason"] and registered["registered"]
    serving = registered["tag"]

    # Week 2: the same weights, triggered for two scenarios. The old gate compared 2-scenario
    # AUC with the recorded 12-scenario 0.99 and rejected it; scored on the same users and
    # scenarios the two models are equal.
    decision, outcome = gate_then_register(candidate(tmp_path / "b", tiny_model, built_two))
    assert decision["passed"], decision["reason"]
    assert decision["scenarios"] == SCENARIOS and decision["serving_recorded_auc"] == 0.99
    # Equal up to ties: the random tiny model embeds some users almost alike, and scores that
    # differ by 1e-7 between two processes can swap a pair or two of 25 test users.
    assert decision["candidate_auc"] == pytest.approx(decision["serving_auc"], abs=0.02)
    for per in decision["per_scenario"].values():
        assert per["candidate"] == pytest.approx(per["serving"], abs=0.02)
    low, high = decision["interval"]["low"], decision["interval"]["high"]
    assert low <= 0.0 <= high and "same 2 scenario(s)" in decision["reason"]
    assert decision["versus_baseline"]["baseline"] == "tfidf_lr"
    assert decision["serving_tag"] == serving and outcome["registered"]
    promoted = outcome["tag"]
    assert registry.promoted(NAME).tag == promoted != serving

    # A candidate that must beat the served model by 0.01 (negative tolerance) and does not.
    decision, outcome = gate_then_register(candidate(tmp_path / "c", tiny_model, built_two), -0.01)
    assert not decision["passed"] and decision["reason"].startswith("rejected: mean AUC")
    assert outcome == {"registered": False, "reason": decision["reason"]}
    assert registry.promoted(NAME).tag == promoted and len(registry.versions(NAME)) == 2
    # notify: the rejection goes out by e-mail with the numbers and what to do next.
    smtp = SmtpSettings(smtp_server.host, smtp_server.port, recipients=["oncall@example.org"])
    summary = announce(tmp_path / "c", smtp)
    assert summary["emailed"] and summary["outcome"].startswith("not registered: rejected")
    (mail,) = smtp_server.messages
    assert "candidate rejected by the quality gate" in mail["Subject"]
    body = mail.get_body(("plain",)).get_content()
    assert decision["reason"] in body and "coupon_redemption: candidate" in body
    assert f"Served model: {promoted}" in body and "Next:" in body
    assert "Report:  file:///" in body and "Runs in Airflow: http://" in body  # absolute links
    assert "<table" in mail.get_body(("html",)).get_content()
    # A passing run sends nothing.
    assert not announce(tmp_path / "b", smtp)["emailed"] and len(smtp_server.messages) == 1
