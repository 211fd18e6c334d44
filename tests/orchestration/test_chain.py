"""The chain is declared once: the Kubeflow pipeline, the Airflow DAG and ``qanchor run`` follow it.

``qanchor run`` is held to it by ``tests/test_pipeline.py::test_run_tiny_end_to_end`` (a real run
records every stage it ran); here the pipeline and the DAG, from their compiled and parsed forms.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.stages import COMPONENTS
from qanchor.orchestrate import chain

from .conftest import DAGS


def test_the_chain_is_well_formed() -> None:
    assert tuple(COMPONENTS) == chain.NAMES  # one component per stage, in chain order
    for i, s in enumerate(chain.CHAIN):
        assert set(s.after) <= set(chain.NAMES[:i]), s.name  # waits only for earlier stages
        assert set(s.inputs) <= set(chain.RUN_INPUTS), s.name
    assert [s.name for s in chain.through("evaluate")][-1] == "evaluate"
    with pytest.raises(KeyError, match="stages"):
        chain.stage("train")


def _kfp_upstream(spec: dict) -> tuple[dict[str, set[str]], dict[str, dict]]:
    """Each component task's upstream tasks (groups expanded, enclosing groups' edges inherited)."""
    dags = {"root": spec["root"]["dag"]["tasks"]}
    dags |= {name: c["dag"]["tasks"] for name, c in spec["components"].items() if "dag" in c}
    group_of = {t: v["componentRef"]["name"] for tasks in dags.values() for t, v in tasks.items()
                if v["componentRef"]["name"] in dags}  # fmt: skip

    def leaves(task: str) -> set[str]:
        if task not in group_of:
            return {task}
        return set().union(*(leaves(t) for t in dags[group_of[task]]))

    parent = {t: name for name, tasks in dags.items() for t in tasks}
    task_of_group = {g: t for t, g in group_of.items()}
    upstream: dict[str, set[str]] = {}
    specs: dict[str, dict] = {}
    for name, tasks in dags.items():
        for t, v in tasks.items():
            if t in group_of:
                continue
            deps, scope = set(v.get("dependentTasks", [])), name
            while (
                scope != "root"
            ):  # a task inside a loop or condition waits for what the group does
                group = task_of_group[scope]
                deps |= set(dags[parent[group]][group].get("dependentTasks", []))
                scope = parent[group]
            upstream[t] = set().union(*(leaves(d) for d in deps)) if deps else set()
            specs[t] = v
    return upstream, specs


def test_the_kubeflow_pipeline_is_the_chain(tmp_path: Path) -> None:
    from components.runner import compile_pipeline

    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml").read_text()))
    upstream, specs = _kfp_upstream(spec)
    stage_of = {COMPONENTS[s].component_spec.name.replace("_", "-"): s for s in chain.NAMES}
    assert sorted(stage_of[t] for t in upstream) == sorted(chain.NAMES)
    for task, deps in upstream.items():
        s = chain.stage(stage_of[task])
        # A gated stage sits in the gate's condition, so it also waits for the gate itself.
        assert {stage_of[d] for d in deps} == set(s.after) | ({"gate"} if s.gated else set()), (
            s.name
        )
        assert specs[task].get("retryPolicy", {}).get("maxRetryCount", 0) == s.retries, s.name
        assert ("triggerPolicy" in specs[task]) is False  # conditions sit on the group, not here
    executors = spec["deploymentSpec"]["executors"]
    gpus = {stage_of[e.removeprefix("exec-")] for e, v in executors.items()
            if "accelerator" in v["container"].get("resources", {})}  # fmt: skip
    assert gpus == {s.name for s in chain.CHAIN if s.gpu}


def test_the_airflow_dag_is_the_chain(airflow_home: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["qanchor_retrain"]
    tasks = {t.task_id: t for t in dag.tasks}
    # Besides the chain, only the operator's report: notify (always) and outcome (fails on reject).
    assert set(tasks) - set(chain.NAMES) == {"notify", "outcome"}
    for s in chain.CHAIN:
        t = tasks[s.name]
        assert set(t.upstream_task_ids) == set(s.after), s.name
        assert (t.retries, t.execution_timeout) == (s.retries, s.timeout), s.name
        assert t.is_mapped is (s.each is not None), s.name
    # The shards are the pipeline's: both write the same embeddings/shard-*-of-N files.
    shards = tasks["embed"].op_kwargs_expand_input.value["shard"]
    assert list(shards) == list(range(chain.EMBED_SHARDS))
