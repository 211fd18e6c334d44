"""The names the deployment (infra/) and the code it deploys must agree on, in one place.

Most facts are read from the code on this branch (the image of components/stages.py, the
pipeline's volume and GPU settings, the Makefile's compile target, the drift DAG's SMTP
connection, BentoML's defaults). The serving contract of issue #7 is written down here because
the service arrives on another branch: once ``services/service.py`` and ``bentofile.yaml`` exist,
tests/infra/test_service_contract.py checks them against these same names.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S_VERSION = "1.33"  # a release kubernetes-validate bundles schemas for (offline)

# --- the serving contract (issue #7 builds it, infra/serving deploys it) -------------------------
SERVICE_MODULE = REPO / "services" / "service.py"
BENTOFILE = REPO / "bentofile.yaml"
SERVICE_CLASS = "QAnchor"
BENTO_NAME = "qanchor"
BENTOFILE_SERVICE = "services.service:QAnchor"
SERVICE_PORT = 3000
LIVENESS_PATH, READINESS_PATH, METRICS_PATH = "/livez", "/readyz", "/metrics"
SERVICE_ENV = {
    "QANCHOR_API_KEY", "QANCHOR_API_KEY_FILE", "QANCHOR_MODEL_TAG", "QANCHOR_FEATURE_REPO",
    "QANCHOR_FEATURE_DATA", "QANCHOR_ONLINE_STORE", "QANCHOR_REDIS_URL", "QANCHOR_CACHE_BYTES",
    "BENTOML_HOME",
}  # fmt: skip
SERVICE_IMAGE_REPO = (
    "qanchor-service"  # `bentoml containerize qanchor:latest -t .../qanchor-service:TAG`
)

# --- names that only infra/ defines ------------------------------------------------------------
NAMESPACE = "qanchor"
PLATFORM_CONFIGMAP = "qanchor-platform"
SECRETS_TEMPLATE = INFRA / "secrets.example.yaml"
HELM_VALUES = INFRA / "airflow" / "values.yaml"
# Files under infra/ that are not Kubernetes objects (kustomize's config, Helm values).
NOT_OBJECTS = {INFRA / "kustomization.yaml", HELM_VALUES}
# Environment names the manifests set that qanchor's code does not read: read by a tool
# (Hugging Face, BentoML, Airflow, redis-server) or used inside the manifest's own command.
TOOL_ENV = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
            "BENTOML_DO_NOT_TRACK", "JOB_NAME", "REDIS_PASSWORD"}  # fmt: skip


def env_default(path: Path, name: str) -> str:
    """The literal default of ``os.environ.get(name, "<default>")`` in a source file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "get"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == name
        ):
            return ast.literal_eval(node.args[1])
    raise AssertionError(f"{path}: no os.environ.get({name!r}, default)")


def module_constant(path: Path, name: str):
    """A module-level literal assignment ``NAME = <literal>`` (read without importing)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path}: no constant {name}")


def platform_image() -> str:
    """The image the Kubeflow components run in (components/stages.py, without QANCHOR_IMAGE)."""
    return env_default(REPO / "components" / "stages.py", "QANCHOR_IMAGE")


def compile_out() -> str:
    """Where ``make compile`` writes the pipeline YAML (the Makefile's compile recipe)."""
    recipe = re.search(r"^compile:.*\n\t(.*)$", (REPO / "Makefile").read_text(), re.M)
    return re.search(r"--out\s+(\S+)", recipe.group(1)).group(1)


@cache
def code_env_names() -> frozenset[str]:
    """Every QANCHOR_/KFP_/BENTOML_ name that the repository's code or Feast config mentions."""
    files = [p for d in ("qanchor", "components", "dags", "monitoring", "services")
             for p in (REPO / d).rglob("*.py")] + list((REPO / "feature_repo").glob("*.yaml"))  # fmt: skip
    pattern = re.compile(r"\b((?:QANCHOR|KFP|BENTOML)_[A-Z0-9_]+)\b")
    return frozenset(m for p in files for m in pattern.findall(p.read_text()))


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag) of ``registry/path/name:tag``."""
    repo, _, tag = image.rpartition(":")
    return repo, tag


def load_docs(path: Path) -> list[dict]:
    """The non-empty YAML documents of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    """Every YAML file under infra/ holding Kubernetes objects."""
    return sorted(p for p in INFRA.rglob("*.yaml") if p not in NOT_OBJECTS)


def objects(*, with_template: bool = False) -> list[dict]:
    """The Kubernetes objects of the kustomization (and the Secrets template if asked)."""
    files = [INFRA / r for r in load_docs(INFRA / "kustomization.yaml")[0]["resources"]]
    if with_template:
        files.append(SECRETS_TEMPLATE)
    return [d for f in files for d in load_docs(f)]


def pod_spec(obj: dict) -> dict | None:
    """The pod spec inside a workload object (Deployment, StatefulSet, Job, CronJob)."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec")


def containers() -> list[tuple[dict, dict]]:
    """(object, container) for every container of every workload in the kustomization."""
    return [(o, c) for o in objects() if (ps := pod_spec(o)) for c in ps["containers"]]


def get(objs: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
