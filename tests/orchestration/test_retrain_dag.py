"""The qanchor_retrain DAG: integrity, structure, the skip on rejection, and one dag.test() run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from .conftest import DAGS, REPO, TWO_SCENARIOS, child_env

HEAVY = ("torch", "transformers", "kfp", "bentoml", "pandas", "feast", "qanchor.orchestrate.stages")


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["qanchor_retrain"]


def test_dags_folder_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "qanchor_retrain" in dagbag.dags


def test_dag_module_imports_nothing_heavy(airflow_home: Path) -> None:
    """Parse time stays small because the DAG file imports only Airflow and the standard library."""
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / "qanchor_retrain.py")],
                         env=child_env(), capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_task_chain(dag) -> None:
    expected = {"build": {"materialize", "tune"}, "materialize": {"pretrain"}, "pretrain": {"tune"},
                "tune": {"evaluate"}, "evaluate": {"gate"},
                "gate": {"register", "outcome"}, "register": {"embed"}, "embed": {"notify"},
                "notify": {"outcome"},
                "outcome": set()}  # fmt: skip
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == expected


def test_tune_is_mapped_over_the_built_scenario_groups(dag) -> None:
    tune = dag.get_task("tune")
    assert tune.is_mapped
    arg = tune.op_kwargs_expand_input.value["scenarios"]
    assert arg.operator.task_id == "build" and arg.key == "return_value"


def test_schedule_params_and_policies(dag) -> None:
    assert dag.schedule == "@weekly"
    assert dag.catchup is False and dag.start_date.year == 2026 and dag.max_active_runs == 1
    assert {"qanchor", "training"} <= set(dag.tags)
    assert "promotes it only if" in dag.doc_md  # the UI's Docs panel
    assert set(dag.params) == {"dataset", "preset", "scenarios", "tolerance"}
    for t in dag.tasks:
        assert t.owner == "ml-platform"
        assert t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=12)
        # Only the decision and the report are not retried (a retry would decide the same).
        assert t.retries >= (0 if t.task_id in ("gate", "notify", "outcome") else 1)
    assert dag.get_task("notify").trigger_rule == "none_failed"


def _default_params(**env: str) -> dict:
    """The DAG's param defaults and schemas when its file is parsed with ``env``."""
    code = ("import json, runpy, sys; dag = runpy.run_path(sys.argv[1])['qanchor_retrain'](); "
            "print(json.dumps({k: [dag.params[k], dag.params.get_param(k).schema] for k in dag.params}))")  # fmt: skip
    base = {k: v for k, v in child_env().items() if k not in ("QANCHOR_PRESET", "QANCHOR_DATASET")}
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / "qanchor_retrain.py")],
                         env={**base, **env}, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_unpausing_runs_tiny_unless_the_deployment_names_a_preset(airflow_home: Path) -> None:
    """A scheduled run (unpausing starts one) takes the defaults: `tiny` unless QANCHOR_PRESET
    (set by infra/platform-env.yaml) says otherwise; the dataset from QANCHOR_DATASET."""
    unset = _default_params()
    assert unset["preset"][0] == "tiny"
    deployed = _default_params(QANCHOR_PRESET="small", QANCHOR_DATASET="/shared/data/raw")
    assert deployed["preset"][0] == "small" and deployed["dataset"][0] == "/shared/data/raw"
    # The trigger form marks a field required unless its type allows null; empty means all.
    value, schema = unset["scenarios"]
    assert value == [] and "null" in schema["type"] and "array" in schema["type"]


def test_register_is_skipped_when_the_gate_rejects(dag) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    register = dag.get_task("register").python_callable
    with pytest.raises(AirflowSkipException, match="below serving"):
        register(
            {"passed": False, "reason": "rejected: mean AUC 0.6 is 0.1 below serving 0.7"},
            run_id="r",
        )


def test_a_rejected_candidate_fails_the_run_with_the_reason(dag) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    outcome = dag.get_task("outcome").python_callable
    reason = "rejected: mean AUC 0.6000 is 0.1000 below the served model's 0.7000"
    with pytest.raises(AirflowFailException, match="candidate not promoted: rejected: mean AUC"):
        outcome({"passed": False, "reason": reason})
    assert outcome({"passed": True, "reason": "passed: ..."}) == "passed: ..."


def test_dag_test_runs_the_whole_chain_with_tiny_preset(
    raw_tiny: Path, tmp_path: Path, bentoml_home: Path
) -> None:
    """One dag.test() of the retraining DAG, every stage through its KFP component (local runner).

    Like `make run`, it reads user snapshots through the project's Feast repo when there is one.
    """
    store = REPO / "feature_repo"
    repo = str(store) if (store / "feature_store.yaml").is_file() else ""
    env = child_env(QANCHOR_WORKDIR=str(tmp_path / "runs"), QANCHOR_FEATURE_REPO=repo)
    cmd = [sys.executable, str(REPO / "dags" / "local.py"), "--home", str(tmp_path / "airflow"),
           "test", "--dataset", str(raw_tiny), "--preset", "tiny", "--scenarios", ",".join(TWO_SCENARIOS)]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    assert any(
        line.startswith("qanchor_retrain manual__") and line.endswith(": success") for line in lines
    )
    metrics_path = Path(
        next(line for line in lines if line.startswith("metrics: ")).split(": ", 1)[1]
    )
    run = metrics_path.parents[1]
    assert run.parent == tmp_path / "runs"
    assert sorted(json.loads(metrics_path.read_text())["scenarios"]) == TWO_SCENARIOS
    assert (run / "eval" / "report.md").is_file()
    assert sorted(p.name for p in (run / "model" / "scenarios").iterdir()) == TWO_SCENARIOS
    # The console shows a line per stage; the whole log, in its file, shows the KFP components ran.
    log = Path(next(line for line in lines if line.startswith("full log: ")).split(": ", 1)[1])
    assert "Executing task" in log.read_text()
    assert len(lines) < 60 and "started" in out.stdout and "done in" in out.stdout
    assert not any(w in out.stdout.lower() for w in ("error", "warning", "traceback"))
    materialized = json.loads((run / "stages" / "materialize.json").read_text())
    assert materialized["skipped"] is (not repo)
    pretrained = json.loads((run / "model" / "config.json").read_text())["pretrain"]
    assert pretrained["runtime"]["feature_repo"] == (repo or None)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["gate"]["passed"] and summary["register"]["registered"]
    # The registered version is the promoted one, in this session's store.
    promoted = json.loads((bentoml_home / "registry" / "qanchor.json").read_text())
    assert promoted["tag"] == summary["register"]["tag"]
    assert Path(summary["register"]["path"]).is_relative_to(bentoml_home)
    # Then the promoted model embedded every user, one file per shard of the chain.
    from qanchor.orchestrate.chain import EMBED_SHARDS

    assert len(list((run / "embeddings").glob("shard-*.parquet"))) == EMBED_SHARDS
