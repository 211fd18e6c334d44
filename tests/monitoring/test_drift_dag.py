"""The drift DAG: DagBag import and structure, then one ``dag.test()`` run that e-mails a real
SMTP server through the Airflow connection ``qanchor_smtp`` and triggers the retraining DAG.

Airflow runs in a child process with a temporary AIRFLOW_HOME and SQLite database (migrated once
per module); see ``dag_runner.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "qanchor_drift.py"
RUNNER = Path(__file__).with_name("dag_runner.py")


# Stand-in for the retraining DAG (its own issue): the drift DAG only needs a target to trigger.
RETRAIN_STUB = """
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import dag


@dag(dag_id="qanchor_retrain", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def qanchor_retrain():
    EmptyOperator(task_id="noop")


qanchor_retrain()
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of an isolated Airflow: temp home, SQLite, no examples, and a DAG folder with
    the drift DAG and a stub ``qanchor_retrain``."""
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    (dags / "qanchor_retrain.py").write_text(RETRAIN_STUB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "QANCHOR_SMTP_"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(dags),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")  # fmt: skip
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    return env


def _runner(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(RUNNER), *args], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)  # fmt: skip
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_dagbag_imports_the_drift_dag_with_its_shape(airflow_env: dict[str, str]) -> None:
    out = _runner(airflow_env, "parse", str(DAG_FILE))
    assert out["import_errors"] == {} and out["dag_ids"] == ["qanchor_drift"]
    dag = out["dag"]
    assert dag["schedule"] == "@daily" and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["start_date"] == "2026-01-05T00:00:00+00:00"
    assert {"qanchor", "monitoring", "drift"} <= set(dag["tags"])
    assert "### qanchor daily drift check" in dag["doc_md"]
    assert dag["params"]["trigger_retrain"] is False and dag["params"]["retrain_conf"] == {}
    assert set(dag["params"]) >= {
        "reference",
        "current",
        "model",
        "report_dir",
        "workspace",
        "config",
    }
    tasks = dag["tasks"]
    assert {k: v["downstream"] for k, v in tasks.items()} == {
        "compute_drift": ["alert", "retrain_wanted"],
        "alert": ["retrain_wanted"],
        "retrain_wanted": ["trigger_retrain"],
        "trigger_retrain": [],
    }
    assert tasks["trigger_retrain"]["operator"] == "TriggerDagRunOperator"
    assert all(t["retries"] == 2 and t["owner"] == "ml-platform" for t in tasks.values())


def test_dag_test_alerts_and_triggers_retraining(
    airflow_env: dict[str, str], drift_data: dict[str, Path], smtp_server, tmp_path: Path
) -> None:
    conn = {"conn_type": "smtp", "host": smtp_server.host, "port": smtp_server.port,
            "extra": {"from": "airflow@example.org", "to": "oncall@example.org"}}  # fmt: skip
    env = {**airflow_env, "AIRFLOW_CONN_QANCHOR_SMTP": json.dumps(conn)}
    conf = {"reference": str(drift_data["reference"]), "current": str(drift_data["shifted"]),
            "report_dir": str(tmp_path / "reports"), "workspace": str(tmp_path / "ws"),
            "config": str(REPO / "monitoring" / "drift.yaml"), "preset": "tiny",
            "trigger_retrain": True, "retrain_conf": {"preset": "tiny"}}  # fmt: skip
    out = _runner(
        env, "test", env["AIRFLOW__CORE__DAGS_FOLDER"] + "/" + DAG_FILE.name, json.dumps(conf)
    )
    assert out["state"] == "success"
    assert set(out["tasks"].values()) == {"success"} and len(out["tasks"]) == 4
    assert out["triggered"] == [{"state": "queued", "conf": {"preset": "tiny"}}]
    (msg,) = smtp_server.messages
    assert msg["From"] == "airflow@example.org" and "input features" in msg["Subject"]
    (run_dir,) = [p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    assert datetime.fromisoformat(run_dir.name).year >= 2026  # one directory per logical date
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["drift_detected"] and summary["workspace"]["project"] == "qanchor drift"
    state = json.loads((tmp_path / "reports" / "alert_state.json").read_text())
    assert state["signature"] == summary["signature"]
