"""What infra/kfp submits is the pipeline YAML that `make compile` writes, as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from .contract import INFRA, REPO, compile_out, get, load_docs, objects, pod_spec

SUBMIT = "qanchor-kfp-submit"


class RecordingClient:
    """Stands in for the KFP API server's client: records what would be submitted.

    The test is about our wiring (manifest -> CLI -> kfp.Client call), not about Kubeflow.
    """

    calls: list[tuple[str, object, dict]] = []

    def __init__(self, host: str, existing_token=None, namespace: str = "kubeflow") -> None:
        self.host = host

    def _record(self, how: str, pipeline, kwargs: dict):
        RecordingClient.calls.append((how, pipeline, {"host": self.host, **kwargs}))
        return type("Result", (), {"run_id": "run-1"})()

    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs):
        return self._record("package", pipeline_file, kwargs)

    def create_run_from_pipeline_func(self, pipeline_func, **kwargs):
        return self._record("func", pipeline_func, kwargs)


@pytest.fixture
def client(monkeypatch) -> type[RecordingClient]:
    import kfp

    RecordingClient.calls = []
    monkeypatch.setattr(kfp, "Client", RecordingClient)
    return RecordingClient


def _submit_container() -> dict:
    (c,) = pod_spec(get(objects(), "CronJob", SUBMIT))["containers"]
    return c


def test_submitter_names_the_compiled_file_in_the_image() -> None:
    c = _submit_container()
    command = c["command"]
    assert command[:3] == ["qanchor", "pipeline", "submit"]
    package = command[command.index("--package") + 1]
    assert package == compile_out() == "components/qanchor_pipeline.yaml"
    # Relative to the image's working directory, where the Containerfile copies components/.
    containerfile = (INFRA / "Containerfile").read_text()
    assert (
        f"WORKDIR {c['workingDir']}" in containerfile
        and "COPY components/ components/" in containerfile
    )
    spec = load_docs(REPO / package)[0]
    assert spec["pipelineInfo"]["name"] == "qanchor-retrain"


def test_submitter_sends_that_file_as_is(client, monkeypatch, capsys) -> None:
    from qanchor.cli import main

    c = _submit_container()
    config = get(objects(), "ConfigMap", "qanchor-platform")["data"]
    monkeypatch.setenv("KFP_HOST", config["KFP_HOST"])
    monkeypatch.chdir(REPO)  # the image's working directory holds the same tree
    argv = [a.replace("$(JOB_NAME)", "retrain-1") for a in c["command"][1:]]
    assert main(argv) == 0
    ((how, pipeline, kwargs),) = client.calls
    assert how == "package" and Path(pipeline).resolve() == (REPO / compile_out()).resolve()
    assert kwargs["host"] == config["KFP_HOST"] and kwargs["enable_caching"] is False
    assert kwargs["arguments"]["run"] == "/shared/runs/retrain-1"
    assert kwargs["arguments"]["preset"] == "paper"
    assert "submitted Kubeflow run run-1" in capsys.readouterr().out


def test_without_a_package_the_pipeline_is_compiled_from_code(client) -> None:
    from components.pipeline import qanchor_pipeline
    from components.runner import submit_pipeline

    assert submit_pipeline({"dataset": "d", "run": "r"}, "http://kfp.example:8888") == "run-1"
    ((how, pipeline, _),) = client.calls
    assert how == "func" and pipeline is qanchor_pipeline


def test_a_missing_package_is_a_clear_error(client, tmp_path) -> None:
    from components.runner import submit_pipeline
    from qanchor.errors import QAnchorError

    with pytest.raises(QAnchorError, match="make compile"):
        submit_pipeline({}, "http://kfp.example:8888", package=tmp_path / "none.yaml")
    assert client.calls == []
