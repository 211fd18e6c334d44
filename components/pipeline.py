"""The qanchor retraining pipeline (Kubeflow Pipelines v2).

    make compile                                   # -> components/qanchor_pipeline.yaml
    qanchor pipeline submit --dataset D --run R    # to the endpoint in KFP_HOST
    qanchor pipeline local --dataset D --run R     # KFP's local runner, no Docker

Generated from the chain (``qanchor.orchestrate.chain``): build -> materialize -> pretrain (1 GPU,
torchrun) -> tune, one task per scenario group (ParallelFor) -> evaluate -> quality gate ->
[passed] register -> batch-embed, sharded (ParallelFor).
``run`` is a directory every step sees: on a cluster every step mounts the ReadWriteMany claim
``SHARED_PVC`` at ``SHARED_MOUNT`` (infra/storage.yaml), and the platform image points
``QANCHOR_WORKDIR`` and ``BENTOML_HOME`` there; see components/stages.py. KFP's local runner
ignores the Kubernetes settings.
"""

# No `from __future__ import annotations`: KFP reads the real annotation objects.
import os
from contextlib import ExitStack

from kfp import dsl

from components.stages import COMPONENTS
from qanchor.orchestrate import chain

PIPELINE_NAME = "qanchor-retrain"
GPU = "nvidia.com/gpu"
# GPU nodes: the label NVIDIA's GPU feature discovery puts on them, and the taint that keeps
# other pods off them (tolerated here; infra/training/pretrain-gpu.yaml uses the same pair).
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")
GPU_TAINT_KEY = "nvidia.com/gpu"
# The shared volume (a deployment fact, like the image): claim name and where steps mount it.
SHARED_PVC = os.environ.get("QANCHOR_SHARED_PVC", "qanchor-shared")
SHARED_MOUNT = "/shared"


def configure(stage: str, task: dsl.PipelineTask) -> dsl.PipelineTask:
    """A task's settings from its stage in the chain (shared by the pipeline and one-stage runs)."""
    # Outputs live on the shared run directory, not in KFP artifacts: KFP's cache would skip a
    # rerun (same string inputs) that must rebuild them, so every step always executes.
    from kfp import kubernetes

    s = chain.stage(stage)
    task.set_caching_options(enable_caching=False)
    if SHARED_PVC:
        kubernetes.mount_pvc(task, pvc_name=SHARED_PVC, mount_path=SHARED_MOUNT)
    if s.gpu:
        task.set_accelerator_type(GPU).set_accelerator_limit(1)
        kubernetes.add_node_selector(task, *GPU_NODE_LABEL)
        kubernetes.add_toleration(task, key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")
    if s.memory:
        task.set_memory_request(s.memory)
    if s.cpu:
        task.set_cpu_request(s.cpu)
    if s.retries:
        task.set_retry(num_retries=s.retries, backoff_duration="60s", backoff_factor=2.0)
    return task


def add_stage(s: chain.Stage, inputs: dict, tasks: dict[str, dsl.PipelineTask]) -> dsl.PipelineTask:
    """Add stage ``s`` of the chain to the pipeline being defined, after the stages it waits for."""
    kwargs = {"run": inputs["run"], **{k: inputs[k] for k in s.inputs}}
    with ExitStack() as scope:
        if s.each == "scenario_group":
            # build returns the groups: one per scenario with `paper`, one in all on a CPU.
            kwargs["scenarios"] = scope.enter_context(dsl.ParallelFor(tasks["build"].output, parallelism=4))  # fmt: skip
        elif s.each == "shard":
            shards = list(range(chain.EMBED_SHARDS))
            kwargs |= {"shard": scope.enter_context(dsl.ParallelFor(shards, parallelism=2)),
                       "num_shards": chain.EMBED_SHARDS}  # fmt: skip
        task = configure(s.name, COMPONENTS[s.name](**kwargs))
        # A task inside a ParallelFor may be waited for from outside it: the wait covers all items.
        return task.after(*(tasks[a] for a in s.after))


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
    """The whole retraining chain over one run directory, one task per stage of the chain."""
    inputs = {"run": run, "dataset": dataset, "preset": preset, "scenarios": scenarios,
              "tolerance": tolerance, "model_name": model_name, "feature_repo": feature_repo}  # fmt: skip
    tasks: dict[str, dsl.PipelineTask] = {}
    with ExitStack() as gated:
        for s in chain.CHAIN:
            if s.gated and not any(chain.stage(a).gated for a in s.after):
                # One condition holds every gated stage (they come last): KFP lets a task depend
                # on one inside a dsl.If only from within the same If.
                gated.enter_context(dsl.If(tasks["gate"].output == True, name="gate-passed"))  # noqa: E712 - a KFP condition  # fmt: skip
            tasks[s.name] = add_stage(s, inputs, tasks)


def compile_pipeline(path: str) -> str:
    """Write the pipeline's YAML (IR) to ``path``; returns the path."""
    from kfp import compiler

    compiler.Compiler().compile(qanchor_pipeline, package_path=path)
    return path
