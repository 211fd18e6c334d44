"""A week in the life of the loop, on tiny synthetic data with a behaviour shift, every hand-off
asserted: retrain (week 1) -> gate -> promote -> serve -> push -> drift against the served model
-> retrain (week 2) -> the gate compares both models on the same users -> promote -> the service
swaps to the new model by itself -> refresh re-embeds everyone under the new identity.

The stages are the library functions the Airflow tasks and KFP components call (the DAGs' own
wiring is tested in test_retrain_dag.py and tests/monitoring/test_drift_dag.py).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from qanchor import registry
from qanchor.config import resolve
from qanchor.data.synth import SynthConfig, synth
from qanchor.features import FeatureStoreConfig, sync
from qanchor.infer.engine import Embedder
from qanchor.infer.refresh import refresh
from qanchor.model.data import BuiltData
from qanchor.model.identity import model_id
from qanchor.monitoring.config import DriftConfig
from qanchor.monitoring.job import resolve_served, run_drift
from qanchor.orchestrate import rundir, stages
from qanchor.serving.config import ServingConfig
from qanchor.serving.service import EmbeddingService

NAME = "qanchor-week"
SCENARIOS = ["cash_loan_default", "churn_next_month"]
REPO = Path(__file__).resolve().parents[2] / "feature_repo"


def retrain(run: Path, raw: Path, tolerance: float) -> tuple[dict, dict]:
    """The retraining DAG's chain: build -> pretrain -> tune -> evaluate -> gate -> register."""
    stages.build(run, str(raw), "tiny", SCENARIOS)
    stages.pretrain(run, "tiny")
    stages.tune_scenarios(run, SCENARIOS, "tiny")
    stages.evaluate(run, "tiny")
    return stages.gate(run, tolerance, NAME), stages.register(run, NAME)


def test_a_week_of_the_loop(tmp_path: Path) -> None:
    # 400 users: enough for the drift tests to tell the shift from sampling noise.
    week1 = synth(SynthConfig(users=400, seed=0), tmp_path / "raw1")
    week2 = synth(SynthConfig(users=400, seed=1, shift_after="2026-02-01", shift_strength=2.0),
                  tmp_path / "raw2")  # fmt: skip

    # Week 1: the first model passes the gate and is promoted.
    gate1, reg1 = retrain(tmp_path / "run1", week1, tolerance=0.01)
    assert gate1["passed"] and "first model" in gate1["reason"] and reg1["registered"]
    tag1 = reg1["tag"]
    run1 = rundir.RunPaths(tmp_path / "run1")
    assert registry.promoted(NAME).tag == tag1 == f"{NAME}:{model_id(run1.model)}"

    # Serve it from a feature store over its build.
    repo = shutil.copytree(REPO, tmp_path / "feature_repo")
    store = FeatureStoreConfig(data=str(run1.built), repo=str(repo), work_dir=str(tmp_path / "fs"))
    sync(store)
    cfg = ServingConfig(model_name=NAME, features=store, reload_seconds=0.01)
    svc = EmbeddingService(cfg)
    users = sorted(pd.read_parquet(run1.built / "users.parquet")["user_id"])[:3]
    first = svc.embed(users[0], SCENARIOS[0])
    assert svc.ready() and first.model_version == tag1

    # A pushed event changes what is served for that user.
    src = str(pd.read_parquet(run1.built / "snapshots.parquet").set_index("user_id")
              .loc[users[0], "event_source"][-1])  # fmt: skip
    event = {"user_id": users[0], "ts": pd.Timestamp("2026-11-01", tz="UTC"), "source": src,
             "text": "opened a brokerage account", "value": 1.0}  # fmt: skip
    from qanchor.serving.schemas import PushEvent

    pushed = svc.push([PushEvent(**event)])
    assert pushed.stale == [users[0]]
    assert svc.embed(users[0], SCENARIOS[0]).feature_version != first.feature_version

    # A batch refresh of everyone under the served model.
    emb_dir = tmp_path / "embeddings"
    snaps = BuiltData.load(run1.built)
    before = refresh(
        _embedder(registry.get(tag1).path, snaps), emb_dir, SCENARIOS, incremental=True
    )
    assert before["model_version"] == model_id(run1.model) and before["embedded"] == 400

    # Drift: the shifted week against what serves (the promoted model and its training build).
    stages.build(tmp_path / "run2", str(week2), "tiny", SCENARIOS)
    run2 = rundir.RunPaths(tmp_path / "run2")
    reference, served = resolve_served("served", "served", NAME)
    assert reference == run1.built.resolve() and served == registry.get(tag1).path
    drift = run_drift(
        reference, run2.built, tmp_path / "drift", resolve(DriftConfig, "tiny"), served
    )
    assert drift["drift_detected"] and drift["model_version"] == model_id(run1.model)
    assert drift["embeddings"]["scenarios"] and drift["scores"]["scenarios"]

    # The drift triggers week 2's retraining (as qanchor_drift's trigger_retrain would). The gate
    # re-scores the served model on week 2's test users; a wide tolerance lets the new model in
    # whatever these random tiny models score, and the comparison is still recorded.
    shutil.rmtree(run2.root)
    gate2, reg2 = retrain(tmp_path / "run2", week2, tolerance=1.0)
    test_users = pd.read_parquet(run2.built / "labels.parquet").query("split == 'test'")
    assert gate2["passed"] and gate2["serving_tag"] == tag1 and gate2["scenarios"] == SCENARIOS
    assert gate2["serving_auc"] is not None and gate2["interval"] is not None
    assert len(test_users) and "on the same 2 scenario(s) and test users" in gate2["reason"]
    tag2 = reg2["tag"]
    assert tag2 != tag1 and registry.promoted(NAME).tag == tag2

    # The service swaps to the new model by itself (loaded in the background).
    for _ in range(600):
        got = svc.embed(users[1], SCENARIOS[0])
        if got.model_version == tag2:
            break
        time.sleep(0.05)
    assert got.model_version == tag2 and not got.prefix_cached

    # Refresh follows the model: every user again, under the new identity.
    after = refresh(_embedder(registry.get(tag2).path, snaps), emb_dir, SCENARIOS, incremental=True)
    assert after["embedded"] == 400 and after["full"]
    shards = [pd.read_parquet(p) for p in emb_dir.glob("shard-*.parquet")]
    assert set(pd.concat(shards)["model_version"]) == {model_id(run2.model)}
    assert json.loads((emb_dir / "summary.json").read_text())["model_version"] == model_id(
        run2.model
    )


def _embedder(model_dir: Path, data: BuiltData) -> Embedder:
    emb = Embedder.from_dir(model_dir)
    emb.load_users(data.snapshots, data.profiles)
    return emb
