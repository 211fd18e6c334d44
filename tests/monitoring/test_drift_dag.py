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


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of an isolated Airflow: temp home, SQLite, no examples, a DAG folder with the
    drift DAG and the real ``qanchor_retrain`` it triggers, and a BentoML home of its own."""
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    shutil.copy(REPO / "dags" / "qanchor_retrain.py", dags / "qanchor_retrain.py")
    drop = ("AIRFLOW", "QANCHOR_SMTP_", "QANCHOR_DRIFT_", "BENTOML_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               BENTOML_HOME=str(home / "bentoml"), BENTOML_DO_NOT_TRACK="True",
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


def promote_in(env: dict[str, str], model: Path) -> str:
    """Register and promote ``model`` in the Airflow child's BentoML home (BentoML fixes its
    home once per process: this test process must not)."""
    code = ("import sys; from qanchor import registry; t = registry.register(sys.argv[1]); "
            "registry.promote(t, 'drift test'); print(t)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(model)], env=env, capture_output=True,
                         text=True, timeout=300, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def test_dag_test_alerts_and_triggers_retraining(
    airflow_env: dict[str, str], drift_data: dict[str, Path], smtp_server, tmp_path: Path,
    drift_model: Path,
) -> None:  # fmt: skip
    # No `model` in the conf: the DAG's default, the promoted model of the registry.
    tag = promote_in(airflow_env, drift_model)
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
    # The real retraining DAG, queued with the configured conf.
    assert out["triggered"] == [{"state": "queued", "conf": {"preset": "tiny"}}]
    (msg,) = smtp_server.messages
    assert msg["From"] == "airflow@example.org" and "input features" in msg["Subject"]
    # The e-mail tells on-call that this run starts a retrain, and names the served model.
    text = msg.get_body(("plain",)).get_content()
    assert "Retraining was triggered" in text and tag in text
    (run_dir,) = [p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    assert datetime.fromisoformat(run_dir.name).year >= 2026  # one directory per logical date
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["drift_detected"] and summary["workspace"]["project"] == "qanchor drift"
    # Embedding and score drift of the served model, named by its identity.
    assert summary["model_version"] == tag.split(":", 1)[1]
    assert summary["embeddings"]["scenarios"] and summary["scores"]["scenarios"]
    state = json.loads((tmp_path / "reports" / "alert_state.json").read_text())
    assert state["signature"] == summary["signature"]
