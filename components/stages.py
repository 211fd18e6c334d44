"""One Kubeflow Pipelines v2 component per stage; each body is one call into qanchor.

Components pass paths, not data: every stage reads and writes under one run directory that all
steps see (a shared volume on a cluster, a local directory with KFP's local runner), see
``qanchor.orchestrate.stages``. Bodies import qanchor lazily: KFP ships only the function's
source to the executor, and importing this module must stay cheap for the Airflow DAG parser.

Run one locally without Docker::

    from kfp import local
    local.init(runner=local.SubprocessRunner(use_venv=False))
    build_dataset(run="runs/r1", dataset="data/synthetic", preset="tiny", scenarios=[])
"""

# No `from __future__ import annotations`: KFP reads the real annotation objects.
import os

from kfp import dsl

# The image that holds qanchor and its lock (a deployment fact, hence the environment).
IMAGE = os.environ.get("QANCHOR_IMAGE", "qanchor:0.1.0")
# kfp is in the image's lock already; the default would pip-install it at every step.
COMPONENT = {"base_image": IMAGE, "install_kfp_package": False}


@dsl.component(**COMPONENT)
def build_dataset(run: str, dataset: str, preset: str, scenarios: list) -> list:
    """Validate and build the dataset into <run>/built; returns the scenario groups to tune
    (all scenarios or the given ones, ``scenarios_per_task`` of the preset per group)."""
    from qanchor.orchestrate import stages

    return stages.build(run, dataset, preset, scenarios)["tune_groups"]


@dsl.component(**COMPONENT)
def materialize_features(run: str, feature_repo: str = "") -> dict:
    """Apply the feature repo over <run>/built and load the online store ("" = no store)."""
    from qanchor.orchestrate import stages

    return stages.materialize(run, feature_repo)


@dsl.component(**COMPONENT)
def pretrain_model(run: str, preset: str, nproc: int = 0, feature_repo: str = "") -> dict:
    """Pretrain <run>/model; under torchrun with one process per visible GPU."""
    from qanchor.orchestrate import stages

    return stages.pretrain(run, preset, nproc, feature_repo)


@dsl.component(**COMPONENT)
def tune_scenarios(run: str, scenarios: list, preset: str, feature_repo: str = "") -> dict:
    """Soft-prompt tune a group of scenarios into <run>/model/scenarios/<scenario>."""
    from qanchor.orchestrate import stages

    return stages.tune_scenarios(run, scenarios, preset, feature_repo)


@dsl.component(**COMPONENT)
def evaluate_model(run: str, preset: str, feature_repo: str = "") -> dict:
    """Evaluate the tuned model and the baselines into <run>/eval."""
    from qanchor.orchestrate import stages

    return stages.evaluate(run, preset, feature_repo)


@dsl.component(**COMPONENT)
def quality_gate(run: str, tolerance: float, model_name: str) -> bool:
    """Pass only a candidate whose mean AUC is not below the serving model's by > tolerance.

    The decision and its reason are recorded in <run>/stages/gate.json.
    """
    from qanchor.orchestrate import stages

    return stages.gate(run, tolerance, model_name)["passed"]


@dsl.component(**COMPONENT)
def register_model(run: str, model_name: str) -> dict:
    """Register <run>/model in the BentoML model store and promote it (gate permitting)."""
    from qanchor.orchestrate import stages

    return stages.register(run, model_name)


@dsl.component(**COMPONENT)
def embed_shard(run: str, shard: int, num_shards: int) -> dict:
    """Embed one shard of the users x tuned scenarios into <run>/embeddings."""
    from qanchor.orchestrate import stages

    return stages.embed_shard(run, shard, num_shards)


# Stage name (``qanchor.orchestrate.chain``; Airflow tasks and ``components.runner`` use it) ->
# component.
COMPONENTS = {
    "build": build_dataset,
    "materialize": materialize_features,
    "pretrain": pretrain_model,
    "tune": tune_scenarios,
    "evaluate": evaluate_model,
    "gate": quality_gate,
    "register": register_model,
    "embed": embed_shard,
}
