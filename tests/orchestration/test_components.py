"""Kubeflow components through KFP's local SubprocessRunner, and the compiled pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.runner import run_stage, stage_pipeline
from qanchor.infer.shards import COLUMNS
from qanchor.orchestrate.rundir import RunPaths

from .conftest import REPO, TWO_SCENARIOS


def executor_of(spec: dict, task: str) -> dict:
    """The container spec that runs ``task`` in a compiled pipeline."""
    dag_tasks = spec["root"]["dag"]["tasks"]
    comp = dag_tasks[task]["componentRef"]["name"]
    exe = spec["components"][comp]["executorLabel"]
    return spec["deploymentSpec"]["executors"][exe]["container"]


def test_compiled_yaml_requests_a_gpu_for_pretrain_only(tmp_path: Path) -> None:
    from components.runner import compile_pipeline

    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml").read_text()))
    pretrain = executor_of(spec, "pretrain-model")["resources"]["accelerator"]
    assert pretrain["resourceType"] == "nvidia.com/gpu" and pretrain["resourceCount"] == "1"
    others = [
        e
        for name, e in spec["deploymentSpec"]["executors"].items()
        if name != "exec-pretrain-model"
    ]
    assert len(others) == 7 and all(
        "accelerator" not in e["container"].get("resources", {}) for e in others
    )
    # Every step uses the qanchor image and does not pip-install kfp at run time.
    assert all("pip install" not in " ".join(e["container"]["command"]) for e in others)
    # The committed YAML is what `make compile` writes today.
    assert (REPO / "components" / "qanchor_pipeline.yaml").read_text() == (
        tmp_path / "p.yaml"
    ).read_text()


def test_single_stage_submission_keeps_the_gpu_request(tmp_path: Path) -> None:
    from kfp import compiler

    path = tmp_path / "one.yaml"
    compiler.Compiler().compile(
        stage_pipeline("pretrain", run="/shared/r1", preset="paper"), str(path)
    )
    spec = next(yaml.safe_load_all(path.read_text()))  # 2nd document: Kubernetes settings
    assert (
        executor_of(spec, "pretrain-model")["resources"]["accelerator"]["resourceType"]
        == "nvidia.com/gpu"
    )
    assert (
        spec["root"]["dag"]["tasks"]["pretrain-model"]["inputs"]["parameters"]["preset"][
            "runtimeValue"
        ]["constant"]
        == "paper"
    )


def test_sharded_embed_component_runs_locally(
    built_tiny: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other components run through the local runner in test_retrain_dag.py's dag.test()."""
    import tempfile

    from qanchor.orchestrate import stages

    temp = tmp_path / "temp"  # where KFP's local mode makes its workspace
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    run = RunPaths(tmp_path / "run")
    shutil.copytree(built_tiny, run.built)
    shutil.copytree(tiny_model, run.model)
    tuned = stages.tune_scenarios(run.root, [TWO_SCENARIOS[0]], "tiny")
    assert tuned["scenarios"] == [TWO_SCENARIOS[0]]
    assert tuned["adapters"][TWO_SCENARIOS[0]]["bytes"] > 0
    assert (run.model / "scenarios" / TWO_SCENARIOS[0] / "adapter.safetensors").is_file()
    shards = [run_stage("embed", run.root, shard=k, num_shards=2) for k in range(2)]
    assert not list(temp.glob("kfp-workspace-*"))  # each task's workspace is removed after it
    frames = [pd.read_parquet(s["path"]) for s in shards]
    users = [set(f["user_id"]) for f in frames]
    assert not users[0] & users[1]
    assert users[0] | users[1] == set(pd.read_parquet(run.built / "users.parquet")["user_id"])
    for f in frames:
        assert tuple(f.columns) == COLUMNS  # the schema of `qanchor embed`'s shards too
        assert set(f["scenario"]) == {TWO_SCENARIOS[0]}
        assert f["embedding"].map(len).nunique() == 1
    assert sorted(p.name for p in run.embeddings.iterdir()) == [
        "shard-00000-of-00002.parquet",
        "shard-00001-of-00002.parquet",
    ]


@pytest.mark.slow
def test_whole_pipeline_runs_with_the_local_runner(raw_tiny: Path, tmp_path: Path) -> None:
    from qanchor.cli import main

    run = tmp_path / "run"
    argv = ["pipeline", "local", "--dataset", str(raw_tiny), "--run", str(run), "--preset", "tiny",
            "--scenarios", ",".join(TWO_SCENARIOS), "--model-name", "qanchor-kfp-local"]  # fmt: skip
    assert main(argv) == 0
    paths = RunPaths(run)
    assert (paths.eval / "metrics.json").is_file()
    assert len(list(paths.embeddings.glob("shard-*.parquet"))) == 4
    assert (paths.root / "stages" / "register.json").is_file()


@pytest.mark.slow
def test_pretrain_stage_runs_under_torchrun(built_tiny: Path, tmp_path: Path, monkeypatch) -> None:
    """What the pretrain component does on a multi-GPU node, here with two CPU processes (gloo)."""
    from qanchor.orchestrate import stages

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = RunPaths(tmp_path / "run")
    shutil.copytree(built_tiny, run.built)
    result = stages.pretrain(run.root, "tiny", nproc=2)
    assert result["processes"] == 2 and (run.model / "weights.safetensors").is_file()
    assert set(result["retrieval"]) == {"future", "uqa"}


def test_tune_groups_follow_the_preset() -> None:
    """One task per scenario on a cluster (`paper`), all scenarios in one task on a CPU."""
    from qanchor.orchestrate.stages import tune_groups, tune_key

    names = ["a", "b", "c"]
    assert tune_groups(names, "paper") == [["a"], ["b"], ["c"]]
    assert tune_groups(names, "small") == [names] and tune_groups(names, "tiny") == [names]
    assert tune_key(["a"]) == "tune-a" and tune_key(names) == "tune-a-and-2"
