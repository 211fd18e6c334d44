"""
### qanchor daily drift check

Compares the latest built dataset with the one the serving model was trained on and alerts
on-call by e-mail when the users' behaviour has moved.

`compute_drift` → `alert` → `retrain_wanted` → `trigger_retrain`

* **compute_drift**: input features (per-user aggregates and profile), embeddings of a user sample
  and the per-scenario scores, each with Evidently against the reference. Writes
  `<report_dir>/<date>/report.html`, `features.html`, `scores.html`, `summary.json`, and adds the
  runs to the Evidently workspace (project *qanchor drift*; `make monitor-ui`).
* **alert**: e-mails what drifted and by how much, the model's identity (`qanchor:<model_id>`),
  absolute links to the reports and the Evidently project (base URLs `QANCHOR_DRIFT_REPORTS_URL`,
  `QANCHOR_EVIDENTLY_URL`, `QANCHOR_AIRFLOW_URL`) and what to do next: whether a retrain was
  triggered, how to trigger one, how to silence the alert. Nothing is sent when
  nothing drifted; an unchanged drift is not re-sent before the cool-down
  (`<report_dir>/alert_state.json`). SMTP settings: the Airflow connection `qanchor_smtp` (host,
  port, login, password; extra `{"from": ..., "to": "a@x,b@y", "starttls": true}`), else the
  `QANCHOR_SMTP_*` environment variables.
* **trigger_retrain**: starts `qanchor_retrain` with `retrain_conf` when drift was found and the
  `trigger_retrain` param is on (off by default).

**Params**: `reference`, `current` (built dataset directories), `model` (model directory; empty:
features only). By default `model` and `reference` are `served`: the promoted model in the
registry and the build it was trained on (recorded in its `data_manifest.json`), so embedding
and score drift are on and always about what serves; `report_dir`, `workspace`, `config` (thresholds YAML), `preset`,
`trigger_retrain`, `retrain_conf`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

SMTP_CONN_ID = "qanchor_smtp"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(hours=2),
}
PARAMS = {
    "reference": Param(os.environ.get("QANCHOR_DRIFT_REFERENCE", "served"), type="string",
                       description="built dataset of the training snapshot window ('served': the "
                                   "one the promoted model was trained on)"),
    "current": Param(os.environ.get("QANCHOR_DRIFT_CURRENT", "data/built-latest"), type="string",
                     description="built dataset of the latest snapshots"),
    "model": Param(os.environ.get("QANCHOR_DRIFT_MODEL", "served"), type="string",
                   description="model directory for embedding and score drift ('served': the "
                               "promoted model; empty: features only)"),
    "report_dir": Param(os.environ.get("QANCHOR_DRIFT_REPORTS", "runs/drift"), type="string",
                        description="one sub-directory per run, plus alert_state.json"),
    "workspace": Param(os.environ.get("QANCHOR_DRIFT_WORKSPACE", str(REPO / "monitoring" / "workspace")),
                       type="string", description="Evidently workspace (empty: none)"),
    "config": Param(str(REPO / "monitoring" / "drift.yaml"), type="string", description="thresholds YAML"),
    "preset": Param("small", enum=["tiny", "small", "paper"], description="DriftConfig preset"),
    "trigger_retrain": Param(False, type="boolean", description="start qanchor_retrain on drift"),
    "retrain_conf": Param({}, type="object", description="conf of the triggered qanchor_retrain run"),
}  # fmt: skip


@dag(
    dag_id="qanchor_drift",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs share the alert state file
    dagrun_timeout=timedelta(hours=4),
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["qanchor", "monitoring", "drift"],
    doc_md=__doc__,
)
def qanchor_drift():
    @task
    def compute_drift(params: dict | None = None, ds: str | None = None) -> dict:
        """Run the drift checks into <report_dir>/<date>; pass on what drifted."""
        from qanchor.monitoring.job import run_configured

        out = Path(params["report_dir"]) / (ds or pendulum.now("UTC").to_date_string())
        s = run_configured(params["reference"], params["current"], out, params["preset"],
                           params["config"], params["model"], params["workspace"])  # fmt: skip
        return {"summary": str(out / "summary.json"), "drift_detected": s["drift_detected"],
                "drifted_items": s["drifted_items"]}  # fmt: skip

    @task
    def alert(result: dict, params: dict | None = None) -> dict:
        """E-mail on-call about a new (or long-lasting) drift; nothing when nothing drifted."""
        from qanchor.monitoring.alert import airflow_smtp_settings, alert_on_drift
        from qanchor.monitoring.job import read_summary

        summary = read_summary(result["summary"])
        state = Path(params["report_dir"]) / "alert_state.json"
        return alert_on_drift(
            summary,
            airflow_smtp_settings(SMTP_CONN_ID),
            state,
            summary["thresholds"]["cooldown_hours"],
            retrain=bool(params["trigger_retrain"]),  # the e-mail says whether a retrain starts
        )

    @task.short_circuit
    def retrain_wanted(result: dict, params: dict | None = None) -> bool:
        """Go on to the retraining trigger only on drift and when the param asks for it."""
        return bool(params["trigger_retrain"]) and bool(result["drift_detected"])

    trigger_retrain = TriggerDagRunOperator(
        task_id="trigger_retrain",
        trigger_dag_id="qanchor_retrain",
        conf="{{ params.retrain_conf | tojson }}",
        wait_for_completion=False,
    )

    result = compute_drift()
    alert(result) >> retrain_wanted(result) >> trigger_retrain


qanchor_drift()
