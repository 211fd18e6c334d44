"""The gate when the promoted model came from another dataset (the demo, then one's own data).

Real stage functions on a real model store: a model promoted from the synthetic data (its
sources, profile and scenarios) cannot be scored on a dataset of other sources, so the candidate
is judged alone and the decision says why; a promoted model of the same schema is re-scored on
the candidate's users even for scenarios it never saw.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from qanchor import registry
from qanchor.orchestrate import stages
from qanchor.orchestrate.rundir import RunPaths

NAME = "qanchor-other-dataset-test"  # the session store's other names belong to other tests
EVAL = {"baselines": ["tfidf_lr"]}
RENAMED = {"buys": "purchase_soon", "reads": "mostly_reader"}


def gate_then_register(run: Path, tolerance: float = 0.01) -> tuple[dict, dict]:
    return stages.gate(run, tolerance, NAME), stages.register(run, NAME)


def trained_run(run: Path, raw: Path, tune: bool = False) -> Path:
    """Build ``raw``, pretrain a tiny model for a few steps (and tune it), evaluate."""
    built = stages.build(run, str(raw), "tiny")
    stages.pretrain(run, "tiny", overrides={"steps": 4})
    if tune:
        stages.tune_scenarios(run, built["scenarios"], "tiny", overrides={"steps": 2})
    stages.evaluate(run, "tiny", overrides=EVAL)
    return run


def other_users_and_scenarios(raw: Path, out: Path) -> Path:
    """``raw`` with every user and scenario renamed: the same schema, another dataset."""
    shutil.copytree(raw, out)
    for name in ("events", "labels", "profiles"):
        frame = pd.read_parquet(out / f"{name}.parquet")
        frame["user_id"] = "other-" + frame["user_id"]
        if name == "labels":
            frame["scenario"] = frame["scenario"].map(RENAMED)
        frame.to_parquet(out / f"{name}.parquet")
    scen = yaml.safe_load((out / "scenarios.yaml").read_text())
    (out / "scenarios.yaml").write_text(
        yaml.safe_dump([{**s, "name": RENAMED[s["name"]]} for s in scen])
    )
    return out


def test_a_model_promoted_from_another_dataset(
    tiny_model: Path, built_tiny: Path, toy_dataset: Path, tmp_path: Path
) -> None:
    # The synthetic demo's model is promoted (sources bill, app, search...; 12 scenarios).
    demo = RunPaths(tmp_path / "demo")
    shutil.copytree(tiny_model, demo.model)
    shutil.copytree(built_tiny, demo.built)
    stages.evaluate(demo.root, "tiny", overrides=EVAL)
    first, registered = gate_then_register(demo.root)
    assert first["passed"] and registered["promoted"]

    # Then one's own data: other sources (shop, web, call), profile and scenarios. The served
    # model sees none of its inputs there (re-scoring it used to crash in the encoder), so
    # the candidate is judged alone and the decision names why.
    own = trained_run(tmp_path / "own", toy_dataset, tune=True)
    decision, outcome = gate_then_register(own)
    assert decision["passed"], decision["reason"]
    assert decision["reason"].startswith("passed as a first model on this data")
    assert "trained on another dataset or feature schema" in decision["reason"]
    assert decision["serving_tag"] == registered["tag"] and decision["serving_auc"] is None
    diffs = decision["served_schema_differences"]
    assert any(d.startswith("sources: ['app', 'bill'") and "['call', 'shop', 'web']" in d for d in diffs)  # fmt: skip
    assert any(d.startswith("tabular columns missing from the build: ") for d in diffs)
    assert all(d in decision["reason"] for d in diffs)
    assert outcome["registered"] and registry.promoted(NAME).tag == outcome["tag"]
    own_tag = outcome["tag"]

    # Other users and scenarios of the same schema are comparable: the served model (adapters
    # for buys and reads only) is re-scored on the candidate's users with the new queries.
    other = other_users_and_scenarios(toy_dataset, tmp_path / "other-raw")
    decision, outcome = gate_then_register(trained_run(tmp_path / "other", other), tolerance=1.0)
    assert decision["served_schema_differences"] == [] and decision["serving_tag"] == own_tag
    assert sorted(decision["scenarios"]) == sorted(RENAMED.values())
    assert sorted(decision["bare_query_scenarios"]) == sorted(RENAMED.values())
    assert decision["serving_auc"] is not None and decision["interval"] is not None
    assert decision["reason"].startswith("passed: mean AUC") and outcome["registered"]
