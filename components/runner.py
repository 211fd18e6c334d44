"""Run qanchor's Kubeflow components: locally without Docker, or on a Kubeflow Pipelines endpoint.

    run_stage("build", "runs/r1", dataset="data/synthetic", preset="tiny", scenarios=[])

The mode is a deployment fact read from the environment: with ``KFP_HOST`` set (and optionally
``KFP_TOKEN``, ``KFP_NAMESPACE``, ``KFP_EXPERIMENT``) a stage is submitted to that endpoint as a
one-step pipeline and waited for; without it the component runs through KFP's local
``SubprocessRunner`` in this Python environment. Either way the caller gets the stage's recorded
result from the run directory, which must therefore be shared with the cluster in remote mode.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qanchor.errors import QAnchorError
from qanchor.orchestrate.rundir import read_result

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 6 * 3600


def kfp_host() -> str | None:
    """The Kubeflow Pipelines endpoint, if one is configured (remote mode)."""
    return os.environ.get("KFP_HOST") or None


def result_key(stage: str, kwargs: dict[str, Any]) -> str:
    """The name a stage records its result under (mapped stages carry their item)."""
    if stage == "tune":
        from qanchor.orchestrate.stages import tune_key

        return tune_key(kwargs["scenarios"])
    if stage == "embed":
        return f"embed-{kwargs['shard']}"
    return stage


@contextmanager
def local_mode(pipeline_root: str | Path) -> Iterator[None]:
    """KFP's local mode with a subprocess runner in this very environment (no venv, no Docker)."""
    import tempfile

    from kfp import local

    # Without a workspace root KFP makes a fresh temp directory per init and never removes it:
    # one per stage task, piling up in /tmp week after week.
    scratch = tempfile.TemporaryDirectory(prefix="kfp-workspace-")
    with scratch as workspace, warnings.catch_warnings():
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(pipeline_root),
            workspace_root=workspace,
            raise_on_error=True,
        )
        # The local runner warns that our base image is not a "python" one; it does not use it.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)  # fmt: skip
        yield


def run_local(component, pipeline_root: str | Path, **kwargs: Any):
    """Execute one component now with KFP's local subprocess runner; returns the task."""
    with local_mode(pipeline_root):
        return component(**kwargs)


def run_stage(stage: str, run: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Run one stage's component for the run directory ``run``; returns its recorded result.

    Args:
        stage: a key of ``components.stages.COMPONENTS`` (build, pretrain, tune, ...).
        run: the run directory shared by all stages of one run.
        **kwargs: the component's other inputs.
    """
    from components.stages import COMPONENTS

    if stage not in COMPONENTS:
        raise QAnchorError(f"unknown stage {stage!r}; stages: {sorted(COMPONENTS)}")
    run = str(run)
    if host := kfp_host():
        submit_stage(stage, host, run=run, **kwargs)
    else:
        run_local(COMPONENTS[stage], Path(run) / "kfp-local", run=run, **kwargs)
    return read_result(run, result_key(stage, kwargs))


def _client(host: str):
    import kfp

    return kfp.Client(host=host, existing_token=os.environ.get("KFP_TOKEN") or None,
                      namespace=os.environ.get("KFP_NAMESPACE", "kubeflow"))  # fmt: skip


def stage_pipeline(stage: str, **kwargs: Any):
    """A one-step pipeline running ``stage`` with constant inputs and the stage's task settings."""
    from kfp import dsl

    from components.pipeline import configure
    from components.stages import COMPONENTS

    @dsl.pipeline(name=f"qanchor-{stage}")
    def one_stage():
        configure(stage, COMPONENTS[stage](**kwargs))

    return one_stage


def submit_stage(stage: str, host: str, timeout_s: int = DEFAULT_TIMEOUT_S, **kwargs: Any) -> str:
    """Submit one stage to ``host``, wait for it, and fail unless it succeeded; returns the run id."""
    return _submit(stage_pipeline(stage, **kwargs), {}, host, f"qanchor-{stage}", True, timeout_s)


def submit_pipeline(arguments: dict[str, Any], host: str, wait: bool = False,
                    timeout_s: int = DEFAULT_TIMEOUT_S, package: str | Path | None = None) -> str:  # fmt: skip
    """Submit the whole pipeline to ``host``; returns the KFP run id.

    Args:
        arguments: the pipeline's parameters.
        host: the Kubeflow Pipelines endpoint.
        wait: wait for the run to finish (and fail unless it succeeded).
        timeout_s: how long to wait.
        package: a compiled pipeline YAML (``make compile`` writes components/qanchor_pipeline.yaml)
            submitted as it is; None compiles components/pipeline.py in this process.
    """
    if package is not None:
        if not Path(package).is_file():
            raise QAnchorError(f"{package}: no compiled pipeline (run `make compile`)")
        return _submit(str(package), arguments, host, "qanchor-retrain", wait, timeout_s)
    from components.pipeline import qanchor_pipeline

    return _submit(qanchor_pipeline, arguments, host, "qanchor-retrain", wait, timeout_s)


def _submit(pipeline, arguments: dict, host: str, run_name: str, wait: bool, timeout_s: int) -> str:
    """Create a run of ``pipeline``: a pipeline function, or the path of a compiled package."""
    client = _client(host)
    create = (
        client.create_run_from_pipeline_package
        if isinstance(pipeline, str)
        else client.create_run_from_pipeline_func
    )
    result = create(
        pipeline, arguments=arguments, run_name=run_name,
        experiment_name=os.environ.get("KFP_EXPERIMENT", "qanchor"), enable_caching=False,
    )  # fmt: skip
    log.info("submitted %s to %s: run %s", run_name, host, result.run_id)
    if wait:
        run = client.wait_for_run_completion(result.run_id, timeout=timeout_s)
        state = str(getattr(run, "state", "UNKNOWN"))
        if state != "SUCCEEDED":
            raise QAnchorError(f"Kubeflow run {result.run_id} ({run_name}) ended {state}")
    return result.run_id


def run_pipeline_local(arguments: dict[str, Any], pipeline_root: str | Path):
    """Run the whole pipeline with KFP's local runner (sequentially, in this environment)."""
    from components.pipeline import qanchor_pipeline

    with local_mode(pipeline_root):
        return qanchor_pipeline(**arguments)


def compile_pipeline(path: str | Path) -> Path:
    """Compile the pipeline to YAML at ``path``."""
    from components.pipeline import compile_pipeline as compile_yaml

    return Path(compile_yaml(str(path)))
