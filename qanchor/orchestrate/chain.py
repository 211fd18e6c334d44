"""The retraining chain, declared once: its stages in order, what each reads, writes and needs.

Three runners follow this list and a test holds them to it
(``tests/orchestration/test_chain.py``):

- the Kubeflow pipeline (``components/pipeline.py``) is generated from it: one task per stage,
  a ParallelFor where a stage fans out, a condition where it waits for the gate;
- the Airflow DAG (``dags/qanchor_retrain.py``) has one task per stage with these names, edges,
  retries and timeouts (plus ``notify`` and ``outcome``, which report to the operator);
- ``qanchor run`` (:func:`qanchor.pipeline.run_all`) calls the same stage functions on one
  machine: the stages before ``embed`` in spawned processes (a new one at build, tune and
  evaluate), ``embed`` from the caller's.

Each stage is a function of :mod:`qanchor.orchestrate.stages` over one run directory. This module
imports only the standard library: the DAG file reads it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# Batch embedding fans out over a fixed number of shards: KFP compiles a ParallelFor over a
# constant list statically, and the DAG maps over the same list so both write the same files.
EMBED_SHARDS = 4
# The inputs a run is started with (the pipeline's parameters, the DAG's params and deployment
# settings, ``qanchor run``'s arguments); each stage reads some of them.
RUN_INPUTS = ("dataset", "preset", "scenarios", "feature_repo", "tolerance", "model_name")


@dataclass(frozen=True)
class Stage:
    """One stage of the chain.

    Attributes:
        name: the stage function in ``qanchor.orchestrate.stages`` (``tune`` and ``embed``: their
            per-item forms), the component key and the DAG's task id.
        inputs: the run inputs (:data:`RUN_INPUTS`) the stage reads, besides the run directory.
        after: the stages it waits for.
        writes: what it writes under the run directory (beside ``stages/<name>.json``).
        each: ``"scenario_group"`` (one task per group the build returns) or ``"shard"`` (one task
            per shard of the users); None for a single task.
        gated: runs only when the quality gate passed.
        gpu: asks for one GPU (on Kubeflow; torchrun runs one process per visible GPU).
        memory: memory request on Kubeflow, e.g. "16G"; None = the cluster's default.
        cpu: CPU request on Kubeflow; None = the cluster's default.
        retries: retries after a failure (every stage writes its outputs atomically, so a retry
            starts from complete inputs).
        timeout: longest a single try may run.
    """

    name: str
    inputs: tuple[str, ...]
    after: tuple[str, ...]
    writes: tuple[str, ...]
    each: str | None = None
    gated: bool = False
    gpu: bool = False
    memory: str | None = None
    cpu: str | None = None
    retries: int = 2
    timeout: timedelta = timedelta(minutes=30)


CHAIN: tuple[Stage, ...] = (
    Stage("build", ("dataset", "preset", "scenarios"), (), ("built/",)),
    Stage("materialize", ("feature_repo",), ("build",), ("built/feature_store/",)),
    # One retry: pretraining resumes from its last checkpoint.
    Stage("pretrain", ("preset", "feature_repo"), ("materialize",), ("model/",),
          gpu=True, memory="16G", cpu="4", retries=1, timeout=timedelta(hours=12)),
    Stage("tune", ("preset", "feature_repo"), ("build", "pretrain"), ("model/scenarios/", "guard_vectors/"),
          each="scenario_group", timeout=timedelta(hours=2)),
    Stage("evaluate", ("preset", "feature_repo"), ("tune",), ("eval/",),
          retries=1, timeout=timedelta(hours=3)),
    # No retry: the decision is a pure function of its inputs, a retry would decide the same.
    Stage("gate", ("tolerance", "model_name"), ("evaluate",), ("stages/gate.json",),
          retries=0, timeout=timedelta(minutes=10)),
    Stage("register", ("model_name",), ("gate",), ("the model store",), gated=True),
    Stage("embed", (), ("register",), ("embeddings/",), each="shard", gated=True,
          timeout=timedelta(hours=1)),
)  # fmt: skip

NAMES = tuple(s.name for s in CHAIN)


def stage(name: str) -> Stage:
    """The stage called ``name`` (KeyError names the stages)."""
    for s in CHAIN:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r}; stages: {list(NAMES)}")


def through(last: str) -> tuple[Stage, ...]:
    """The stages from the first up to and including ``last``."""
    return CHAIN[: NAMES.index(stage(last).name) + 1]


def airflow_args(name: str) -> dict:
    """The Airflow task arguments of a stage (its retries and timeout)."""
    s = stage(name)
    return {"retries": s.retries, "execution_timeout": s.timeout}
