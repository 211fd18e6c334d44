"""Parse or test-run the drift DAG in a fresh process (run by test_drift_dag.py).

    AIRFLOW_HOME=... python dag_runner.py parse DAG_FILE
    AIRFLOW_HOME=... python dag_runner.py test DAG_FILE '{"reference": ...}'

A separate process because Airflow reads AIRFLOW_HOME and its configuration once, at import: the
test's temporary home and SQLite database must not leak into other tests (or theirs into ours).
Prints one line ``RESULT <json>``.
"""

from __future__ import annotations

import json
import sys


def describe(dag) -> dict:
    return {
        "tags": sorted(dag.tags),
        "catchup": dag.catchup,
        "schedule": str(dag.schedule),
        "start_date": dag.start_date.isoformat(),
        "max_active_runs": dag.max_active_runs,
        "doc_md": dag.doc_md or "",
        "params": {k: dag.params[k] for k in dag.params},
        "tasks": {
            t.task_id: {"downstream": sorted(t.downstream_task_ids), "retries": t.retries,
                        "owner": t.owner, "operator": type(t).__name__}
            for t in dag.tasks
        },
    }  # fmt: skip


def main(mode: str, dag_file: str, conf: str = "{}") -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dag_file)
    out: dict = {"import_errors": bag.import_errors, "dag_ids": sorted(bag.dag_ids)}
    dag = bag.dags.get("qanchor_drift")
    if dag is not None and mode == "parse":
        out["dag"] = describe(dag)
    elif dag is not None:
        from airflow.models.dagrun import DagRun

        run = dag.test(run_conf=json.loads(conf))
        out["state"] = str(run.state)
        out["tasks"] = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        # Runs the trigger created (dag.test() runs no scheduler, so they stay queued).
        out["triggered"] = [
            {"state": str(r.state), "conf": r.conf} for r in DagRun.find(dag_id="qanchor_retrain")
        ]
    print("RESULT " + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
