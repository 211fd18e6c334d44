"""infra/ agrees with the code it deploys: images, paths, volumes, GPUs, env names, commands."""

from __future__ import annotations

import importlib.metadata
import re
import shlex

import pytest

from .contract import (
    HELM_VALUES,
    INFRA,
    PLATFORM_CONFIGMAP,
    REPO,
    SERVICE_ENV,
    SERVICE_IMAGE_REPO,
    SERVICE_MODULE,
    TOOL_ENV,
    code_env_names,
    compile_out,
    containers,
    env_default,
    get,
    load_docs,
    module_constant,
    objects,
    platform_image,
    pod_spec,
    split_image,
)

PIPELINE = REPO / "components" / "pipeline.py"
CONTAINERFILE = INFRA / "Containerfile"


def _config() -> dict[str, str]:
    return get(objects(), "ConfigMap", PLATFORM_CONFIGMAP)["data"]


def _containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [tuple(ln.split(None, 1)) for ln in lines]


def _image_env() -> dict[str, str]:
    env = {}
    for ins, args in _containerfile():
        if ins == "ENV":
            env.update(dict(kv.split("=", 1) for kv in shlex.split(args)))
    return env


def _platform_containers():
    name = split_image(platform_image())[0]
    return [(o, c) for o, c in containers() if split_image(c["image"])[0].endswith("/" + name)]


def test_platform_image_is_the_components_image() -> None:
    """Every platform container, QANCHOR_IMAGE and Airflow's image name components/stages.py's."""
    repo, tag = split_image(platform_image())
    full = _config()["QANCHOR_IMAGE"]
    assert split_image(full) == (split_image(full)[0], tag) and full.endswith(f"/{repo}:{tag}")
    assert len(_platform_containers()) >= 6
    assert {c["image"] for _, c in _platform_containers()} == {full}
    airflow = load_docs(HELM_VALUES)[0]["images"]["airflow"]
    assert f"{airflow['repository']}:{airflow['tag']}" == full
    # The committed pipeline YAML (make compile with the default image) runs every step in it.
    pipeline = (REPO / compile_out()).read_text()
    assert set(re.findall(r"^\s+image: (\S+)$", pipeline, re.M)) == {platform_image()}


def test_service_image_is_the_containerized_bento() -> None:
    (deployment,) = [o for o in objects() if o["metadata"]["name"] == "qanchor-service" and o["kind"] == "Deployment"]  # fmt: skip
    image = pod_spec(deployment)["containers"][0]["image"]
    assert split_image(image)[0].endswith("/" + SERVICE_IMAGE_REPO)
    assert f"-t {image}" in (REPO / "docs" / "deploy.md").read_text()


def test_containerfile_builds_the_platform_image() -> None:
    steps = _containerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    copied = [args.split()[0].rstrip("/") for ins, args in steps if ins == "COPY"]
    for src in copied:
        assert (REPO / src).exists(), src
    assert {"qanchor", "components", "dags", "feature_repo", "monitoring"} <= set(copied)
    # Runs as the Airflow chart's uid, not root; Airflow's home is the chart's airflowHome.
    values = load_docs(HELM_VALUES)[0]
    assert ("USER", str(values["uid"])) in steps and values["uid"] != 0
    assert _image_env()["AIRFLOW_HOME"] == dict(steps)["WORKDIR"] == "/opt/airflow"
    # The lock's torch line is the one the build replaces by the chosen variant.
    torch = [ln for ln in (REPO / "requirements.lock").read_text().splitlines() if ln.startswith("torch==")]  # fmt: skip
    assert (
        torch == ["torch==2.13.0+cpu"] and "ARG TORCH_VERSION=2.13.0" in CONTAINERFILE.read_text()
    )


def test_shared_volume_is_the_pipelines() -> None:
    """The claim and mount the pipeline steps use are the ones infra/ creates and mounts."""
    claim = env_default(PIPELINE, "QANCHOR_SHARED_PVC")
    mount = module_constant(PIPELINE, "SHARED_MOUNT")
    get(objects(), "PersistentVolumeClaim", claim)
    for obj, c in containers():
        vols = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
        for m in c.get("volumeMounts", []):
            if vols.get(m["name"], {}).get("persistentVolumeClaim", {}).get("claimName") == claim:
                assert m["mountPath"] == mount
    values = load_docs(HELM_VALUES)[0]
    (shared,) = [v for v in values["volumes"] if v.get("persistentVolumeClaim")]
    assert shared["persistentVolumeClaim"]["claimName"] == claim
    assert {"name": shared["name"], "mountPath": mount} in values["volumeMounts"]
    # Run directories, the model store and caches live on it, the same in image and ConfigMap.
    for name in ("QANCHOR_WORKDIR", "BENTOML_HOME", "QANCHOR_CACHE"):
        assert _image_env()[name] == _config()[name] and _config()[name].startswith(mount + "/")
    pipeline = (REPO / compile_out()).read_text()
    assert f"mountPath: {mount}" in pipeline and f"constant: {claim}" in pipeline


def test_gpu_pretraining_selects_the_pipelines_gpu_nodes() -> None:
    label = module_constant(PIPELINE, "GPU_NODE_LABEL")
    taint, gpu = module_constant(PIPELINE, "GPU_TAINT_KEY"), module_constant(PIPELINE, "GPU")
    job = pod_spec(get(objects(), "CronJob", "qanchor-pretrain-gpu"))
    assert job["nodeSelector"] == dict([label])
    assert {"key": taint, "operator": "Exists", "effect": "NoSchedule"} in job["tolerations"]
    (c,) = job["containers"]
    gpus = c["resources"]["limits"][gpu]
    assert c["command"][c["command"].index("--nproc_per_node") + 1] == gpus
    # The compiled pipeline's pretrain step: the same label, toleration and resource.
    platform = load_docs(REPO / compile_out())[1]["platforms"]["kubernetes"]["deploymentSpec"]
    pretrain = platform["executors"]["exec-pretrain-model"]
    assert pretrain["nodeSelector"]["labels"] == dict([label])
    assert {"key": taint, "operator": "Exists", "effect": "NoSchedule"} in pretrain["tolerations"]
    others = [e for n, e in platform["executors"].items() if n != "exec-pretrain-model"]
    assert others and not any("nodeSelector" in e or "tolerations" in e for e in others)


def _env_names() -> set[str]:
    names = {e["name"] for _, c in containers() for e in c.get("env", [])}
    names |= set(_config())
    values = load_docs(HELM_VALUES)[0]
    return names | {e["name"] for e in values["env"]} | {s["envName"] for s in values["secret"]}


def test_env_names_are_read_by_the_code() -> None:
    """Each variable a manifest sets is read by qanchor (or by the named tool, or the contract)."""
    smtp_conn = module_constant(REPO / "dags" / "qanchor_drift.py", "SMTP_CONN_ID")
    known = code_env_names() | TOOL_ENV | {f"AIRFLOW_CONN_{smtp_conn.upper()}"}
    if not SERVICE_MODULE.exists():  # the service's names come from the contract until #7 lands
        known |= SERVICE_ENV
    airflow_settings = {n for n in _env_names() if n.startswith("AIRFLOW__")}
    assert _env_names() - airflow_settings <= known, _env_names() - airflow_settings - known
    # The Feast profile reads the Redis URL under the name the manifests set.
    from qanchor.features.config import REDIS_ENV

    assert (
        "${" + REDIS_ENV + "}" in (REPO / "feature_repo" / "feature_store.redis.yaml").read_text()
    )
    assert REDIS_ENV in _env_names()


def test_airflow_values_for_the_kubernetes_executor() -> None:
    values = load_docs(HELM_VALUES)[0]
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == importlib.metadata.version("apache-airflow")
    assert not values["dags"]["gitSync"]["enabled"] and not values["dags"]["persistence"]["enabled"]
    assert f"name: {PLATFORM_CONFIGMAP}" in values["extraEnvFrom"]
    # The chart's default FAB auth manager is not in the image: the simple one, with its file.
    core = values["config"]["core"]
    assert (
        core["auth_manager"].endswith("SimpleAuthManager")
        and not values["createUserJob"]["enabled"]
    )
    mounts = {m["name"]: m["mountPath"] for m in values["volumeMounts"]}
    auth = next(v["name"] for v in values["volumes"] if "secret" in v)
    assert core["simple_auth_manager_passwords_file"] == f"{mounts[auth]}/passwords.json"
    # No log groomer: its script belongs to the official image.
    for part in ("workers", "scheduler", "dagProcessor", "triggerer"):
        assert values[part]["logGroomerSidecar"]["enabled"] is False


# Keys of the chart's values.yaml (apache/airflow chart/, the 1.19 line) that infra/airflow uses.
CHART_KEYS = {
    "airflowVersion", "defaultAirflowRepository", "defaultAirflowTag", "images.airflow.repository",
    "images.airflow.tag", "images.airflow.pullPolicy", "images.useDefaultImageForMigration",
    "executor", "uid", "gid", "dags.persistence.enabled", "dags.gitSync.enabled", "extraEnvFrom",
    "secret", "env", "volumes", "volumeMounts", "createUserJob.enabled", "config.core.*",
    "postgresql.enabled", "data.metadataSecretName", "logs.persistence.enabled",
    "logs.persistence.existingClaim", "logs.persistence.subPath", "workers.resources.*",
    "workers.logGroomerSidecar.enabled", "scheduler.logGroomerSidecar.enabled",
    "dagProcessor.logGroomerSidecar.enabled", "triggerer.logGroomerSidecar.enabled",
    "apiServer.replicas", "apiServer.resources.*",
}  # fmt: skip


def _leaf_paths(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        out += _leaf_paths(value, path + ".") if isinstance(value, dict) else [path]
    return out


def test_airflow_values_use_only_chart_keys() -> None:
    def known(path: str) -> bool:
        return any(path == k or (k.endswith(".*") and path.startswith(k[:-1])) for k in CHART_KEYS)

    unknown = [p for p in _leaf_paths(load_docs(HELM_VALUES)[0]) if not known(p)]
    assert not unknown


def _cli_argv(command: list[str]) -> list[str] | None:
    """The qanchor CLI arguments of a container command (plain or under torchrun), if any."""
    if command[:1] == ["qanchor"]:
        return command[1:]
    if command[:1] == ["torchrun"] and "qanchor.cli" in command:
        return command[command.index("qanchor.cli") + 1 :]
    return None


def test_manifest_commands_parse_with_the_qanchor_cli() -> None:
    from qanchor.cli import build_parser

    parsed = 0
    for obj, c in containers():
        if (argv := _cli_argv(c.get("command", []))) is None:
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{obj['metadata']['name']}: qanchor rejects {' '.join(argv)}")
        parsed += 1
    assert parsed == 5  # data build, features apply/materialize, pipeline submit, pretrain
