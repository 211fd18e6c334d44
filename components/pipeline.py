"""The qanchor retraining pipeline (Kubeflow Pipelines v2).

    make compile                                   # -> components/qanchor_pipeline.yaml
    qanchor pipeline submit --dataset D --run R    # to the endpoint in KFP_HOST
    qanchor pipeline local --dataset D --run R     # KFP's local runner, no Docker

build -> materialize -> pretrain (1 GPU, torchrun) -> tune, one task per scenario group (ParallelFor)
-> evaluate -> quality gate -> [passed] register -> batch-embed, sharded (ParallelFor).
``run`` is a directory every step sees: on a cluster every step mounts the ReadWriteMany claim
``SHARED_PVC`` at ``SHARED_MOUNT`` (infra/storage.yaml), and the platform image points
``QANCHOR_WORKDIR`` and ``BENTOML_HOME`` there; see components/stages.py. KFP's local runner
ignores the Kubernetes settings.
"""

# No `from __future__ import annotations`: KFP reads the real annotation objects.
import os

from kfp import dsl

from components.stages import (
    build_dataset,
    embed_shard,
    evaluate_model,
    materialize_features,
    pretrain_model,
    quality_gate,
    register_model,
    tune_scenarios,
)

PIPELINE_NAME = "qanchor-retrain"
EMBED_SHARDS = 4  # fixed at compile time: ParallelFor over a constant list compiles statically
GPU = "nvidia.com/gpu"
# GPU nodes: the label NVIDIA's GPU feature discovery puts on them, and the taint that keeps
# other pods off them (tolerated here; infra/training/pretrain-gpu.yaml uses the same pair).
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")
GPU_TAINT_KEY = "nvidia.com/gpu"
# The shared volume (a deployment fact, like the image): claim name and where steps mount it.
SHARED_PVC = os.environ.get("QANCHOR_SHARED_PVC", "qanchor-shared")
SHARED_MOUNT = "/shared"


def configure(stage: str, task: dsl.PipelineTask, retries: int = 0) -> dsl.PipelineTask:
    """Per-stage task settings, shared by the full pipeline and single-stage submissions."""
    # Outputs live on the shared run directory, not in KFP artifacts: KFP's cache would skip a
    # rerun (same string inputs) that must rebuild them, so every step always executes.
    from kfp import kubernetes

    task.set_caching_options(enable_caching=False)
    if SHARED_PVC:
        kubernetes.mount_pvc(task, pvc_name=SHARED_PVC, mount_path=SHARED_MOUNT)
    if stage == "pretrain":
        task.set_accelerator_type(GPU).set_accelerator_limit(1)
        task.set_memory_request("16G").set_cpu_request("4")
        kubernetes.add_node_selector(task, *GPU_NODE_LABEL)
        kubernetes.add_toleration(task, key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="60s", backoff_factor=2.0)
    return task


@dsl.pipeline(name=PIPELINE_NAME, description="Build, pretrain, tune, evaluate, gate, register and embed qanchor.")  # fmt: skip
def qanchor_pipeline(
    dataset: str,
    run: str,
    preset: str = "small",
    scenarios: list = [],  # noqa: B006 - KFP reads the default into the pipeline spec
    tolerance: float = 0.01,
    model_name: str = "qanchor",
    feature_repo: str = "",
):
    """The whole retraining chain over one run directory."""
    build = configure("build", build_dataset(run=run, dataset=dataset, preset=preset, scenarios=scenarios), 2)  # fmt: skip
    features = configure(
        "materialize", materialize_features(run=run, feature_repo=feature_repo), 2
    ).after(build)
    pretrain = configure(
        "pretrain", pretrain_model(run=run, preset=preset, feature_repo=feature_repo), 1
    ).after(features)
    # build returns the scenario groups: one per scenario with `paper`, one in all on a CPU.
    with dsl.ParallelFor(build.output, parallelism=4) as group:
        tune = configure(
            "tune",
            tune_scenarios(run=run, scenarios=group, preset=preset, feature_repo=feature_repo),
            2,
        )
        tune.after(pretrain)
    evaluate = configure("evaluate", evaluate_model(run=run, preset=preset, tuned=dsl.Collected(tune.output), feature_repo=feature_repo), 1)  # fmt: skip
    gate = configure("gate", quality_gate(run=run, tolerance=tolerance, model_name=model_name))
    gate.after(evaluate)
    with dsl.If(gate.output == True, name="gate-passed"):  # noqa: E712 - a KFP condition
        register = configure("register", register_model(run=run, model_name=model_name), 2)
        with dsl.ParallelFor(list(range(EMBED_SHARDS)), parallelism=2) as shard:
            embed = embed_shard(run=run, shard=shard, num_shards=EMBED_SHARDS)
            configure("embed", embed, 2).after(register)


def compile_pipeline(path: str) -> str:
    """Write the pipeline's YAML (IR) to ``path``; returns the path."""
    from kfp import compiler

    compiler.Compiler().compile(qanchor_pipeline, package_path=path)
    return path
