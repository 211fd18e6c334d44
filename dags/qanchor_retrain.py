"""
### qanchor weekly retraining

Rebuilds the training set, retrains the Q-Anchor model, tunes one soft prompt per scenario,
evaluates it against the baselines and **promotes it only if it is not worse than the model being
served** (mean AUC of `qanchor_tuned` may drop by at most `tolerance`).

**Unpausing** this DAG starts the run of the latest weekly interval at once, then one run a
week, each with the default params. To run other params, press **Trigger** (top right) and set
them in the form.

**Params**: `dataset` (a directory in the input contract), `preset` (`tiny` | `small` | `paper`),
`scenarios` (names to tune and evaluate, one per line; empty = all), `tolerance` (gate). Their
defaults come from the deployment: `QANCHOR_DATASET` and `QANCHOR_PRESET` (`make airflow`: the
synthetic dataset and `tiny`; unset: `tiny`).

`build` → `materialize` → `pretrain` → `tune` (one mapped task per scenario group: one per
scenario with `paper`, all in one on a CPU with `tiny`/`small`) → `evaluate` →
`gate` → `register` → `embed` (one mapped task per shard of the users) → `notify` → `outcome`.
The stages, their order, retries and timeouts are the chain of `qanchor.orchestrate.chain`,
which the Kubeflow pipeline and `qanchor run` follow too.

Every task runs one Kubeflow Pipelines component (`components/stages.py`): with KFP's local runner
on this machine, or submitted to the Kubeflow endpoint in `KFP_HOST`. All stages of a run share
the run directory `$QANCHOR_WORKDIR/<run id>/`; each writes its outputs atomically and records a
result in `stages/<stage>.json`, so a retried task starts from complete inputs.

**Outputs**: `eval/metrics.json` and `eval/report.md` in the run directory; a passing model is
registered in the BentoML model store as `qanchor:<version>` and becomes the promoted version,
and every user's embedding for every tuned scenario is written to `embeddings/shard-*.parquet`.
The gate scores the served model again on this run's test users and scenarios and compares the
two there (mean AUC, per scenario, a paired bootstrap interval). When it rejects the candidate,
`register` and `embed` are skipped, `notify` says why (and e-mails it when the `qanchor_smtp` connection or
`QANCHOR_SMTP_*` is set), and `outcome` **fails with the gate's reason**: a rejected candidate
shows as a failed run, never a green one.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from qanchor.orchestrate.chain import EMBED_SHARDS, airflow_args

# Each stage's task takes its retries and timeout from the chain (airflow_args).
DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=1),
}
# The scheduled run uses these defaults, and unpausing the DAG starts the latest week's run at
# once (catchup=False still runs the most recent interval). So the defaults are deployment facts
# from the environment (not Airflow Variables: those would hit the metadata DB on every parse):
# `make airflow` sets the local dataset and `tiny`; infra/platform-env.yaml names the production
# preset. Unset, the preset is `tiny`: an unconfigured Airflow never starts a heavy run by itself.
PARAMS = {
    "dataset": Param(os.environ.get("QANCHOR_DATASET", "data/synthetic"), type="string",
                     description="dataset directory in the input contract"),
    "preset": Param(os.environ.get("QANCHOR_PRESET", "tiny"), enum=["tiny", "small", "paper"],
                    description="preset of every stage (tiny: random tiny models, minutes; small: "
                                "the CPU demo, about 20 min; paper: GPUs)"),
    # "null" makes the field optional in the trigger form; empty or null means every scenario.
    "scenarios": Param([], type=["null", "array"],
                       description="scenarios to tune and evaluate (empty: all)"),
    "tolerance": Param(0.01, type="number", minimum=-1, maximum=1,
                       description="allowed drop in mean AUC (negative: the gain a candidate must show)"),
}  # fmt: skip


@dag(
    dag_id="qanchor_retrain",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=24),
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["qanchor", "training", "kubeflow"],
    doc_md=__doc__,
)
def qanchor_retrain():
    # Every task finds its run directory from the run id: $QANCHOR_WORKDIR/<run id>/.
    @task(**airflow_args("build"))
    def build(params: dict | None = None, run_id: str | None = None) -> list[str]:
        """Validate and build the dataset; returns the scenario groups to tune."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import run_for

        return run_stage("build", run_for(run_id), dataset=params["dataset"], preset=params["preset"],
                         scenarios=list(params["scenarios"] or []))["tune_groups"]  # fmt: skip

    @task(**airflow_args("materialize"))
    def materialize(run_id: str | None = None) -> dict:
        """Load the built snapshots into the feature store."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import feature_repo, run_for

        return run_stage("materialize", run_for(run_id), feature_repo=feature_repo())

    @task(**airflow_args("pretrain"))
    def pretrain(params: dict | None = None, run_id: str | None = None) -> dict:
        """Pretrain the dual-tower model (a GPU and torchrun on Kubeflow)."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import feature_repo, run_for

        return run_stage("pretrain", run_for(run_id), preset=params["preset"], feature_repo=feature_repo())  # fmt: skip

    @task(**airflow_args("tune"), max_active_tis_per_dagrun=2,
          map_index_template="{{ task.op_kwargs['scenarios'] | join(', ') }}")  # fmt: skip
    def tune(scenarios: list[str], params: dict | None = None, run_id: str | None = None) -> dict:
        """Soft-prompt tune one group of scenarios (they share the users' prefix cache)."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import feature_repo, run_for

        return run_stage("tune", run_for(run_id), scenarios=list(scenarios), preset=params["preset"],
                         feature_repo=feature_repo())  # fmt: skip

    @task(**airflow_args("evaluate"))
    def evaluate(params: dict | None = None, run_id: str | None = None) -> dict:
        """Evaluate the tuned model and the baselines (metrics.json, report.md)."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import feature_repo, run_for

        return run_stage("evaluate", run_for(run_id), preset=params["preset"], feature_repo=feature_repo())  # fmt: skip

    @task(**airflow_args("gate"))
    def gate(params: dict | None = None, run_id: str | None = None) -> dict:
        """Compare the candidate's mean AUC with the promoted model's."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import run_for

        return run_stage("gate", run_for(run_id), tolerance=float(params["tolerance"]), model_name="qanchor")  # fmt: skip

    @task(**airflow_args("register"))
    def register(decision: dict, run_id: str | None = None) -> dict:
        """Register and promote the candidate in the BentoML model store (skipped if rejected)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from components.runner import run_stage
        from qanchor.orchestrate.rundir import run_for

        if not decision["passed"]:
            raise AirflowSkipException(decision["reason"])
        return run_stage("register", run_for(run_id), model_name="qanchor")

    @task(**airflow_args("embed"), max_active_tis_per_dagrun=2,
          map_index_template="shard {{ task.op_kwargs['shard'] }}")  # fmt: skip
    def embed(shard: int, run_id: str | None = None) -> dict:
        """Embed one shard of the users x the tuned scenarios into embeddings/ (batch scoring)."""
        from components.runner import run_stage
        from qanchor.orchestrate.rundir import run_for

        return run_stage("embed", run_for(run_id), shard=shard, num_shards=EMBED_SHARDS)

    @task(trigger_rule="none_failed", retries=0, execution_timeout=timedelta(minutes=10))
    def notify(run_id: str | None = None) -> dict:
        """Report the outcome: metrics and report paths, the gate's reason, the promoted version."""
        from qanchor.monitoring.alert import airflow_smtp_settings
        from qanchor.orchestrate.outcome import announce
        from qanchor.orchestrate.rundir import run_for

        return announce(run_for(run_id), airflow_smtp_settings())

    @task(retries=0, execution_timeout=timedelta(minutes=5))
    def outcome(decision: dict) -> str:
        """Fail the run, with the gate's reason, when the candidate was rejected."""
        from airflow.sdk.exceptions import AirflowFailException

        if not decision["passed"]:
            raise AirflowFailException(f"candidate not promoted: {decision['reason']}")
        return decision["reason"]

    groups = build()
    pretrained = pretrain()
    groups >> materialize() >> pretrained
    tuned = tune.expand(scenarios=groups)
    pretrained >> tuned
    decision = gate()
    tuned >> evaluate() >> decision
    # A skipped register (rejected candidate) skips the shards too; notify runs either way.
    (
        register(decision)
        >> embed.expand(shard=list(range(EMBED_SHARDS)))
        >> notify()
        >> outcome(decision)
    )


qanchor_retrain()
