"""infra/serving deploys the agreed serving contract (contract.py); the service code, once it is
on the branch (issue #7), is checked against the same names."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import yaml

from .contract import (
    BENTO_NAME,
    BENTOFILE,
    BENTOFILE_SERVICE,
    LIVENESS_PATH,
    METRICS_PATH,
    READINESS_PATH,
    REPO,
    SERVICE_CLASS,
    SERVICE_ENV,
    SERVICE_MODULE,
    SERVICE_PORT,
    TOOL_ENV,
    get,
    objects,
    pod_spec,
)

SERVICE = "qanchor-service"


def _container() -> dict:
    (c,) = pod_spec(get(objects(), "Deployment", SERVICE))["containers"]
    return c


def _env() -> dict[str, dict]:
    return {e["name"]: e for e in _container()["env"]}


def test_contract_port_and_probes_are_bentomls() -> None:
    """Port 3000 and /livez, /readyz, /metrics are BentoML's own defaults (read from BentoML)."""
    import bentoml._internal.configuration.v2 as conf
    import bentoml._internal.server.base_app as base_app

    defaults = yaml.safe_load(
        (Path(conf.__file__).parent / "default_configuration.yaml").read_text()
    )
    assert defaults["services"]["http"]["port"] == SERVICE_PORT
    routes = Path(base_app.__file__).read_text()
    for path in (LIVENESS_PATH, READINESS_PATH, METRICS_PATH):
        assert f'"{path}"' in routes


def test_serving_deployment_uses_the_contract() -> None:
    c = _container()
    assert c["ports"] == [{"name": "http", "containerPort": SERVICE_PORT}]
    assert c["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == LIVENESS_PATH
    service = get(objects(), "Service", SERVICE)
    assert service["spec"]["ports"][0]["port"] == SERVICE_PORT
    assert service["metadata"]["annotations"]["prometheus.io/path"] == METRICS_PATH
    hpa = get(objects(), "HorizontalPodAutoscaler", SERVICE)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": SERVICE,
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # The API key comes from a Secret, never a literal; the env names are the contract's.
    assert _env()["QANCHOR_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "qanchor-api-key"
    assert set(_env()) <= SERVICE_ENV | TOOL_ENV | {"QANCHOR_CACHE"}
    assert _env()["QANCHOR_ONLINE_STORE"]["value"] == "redis"


def test_serving_pod_fits_the_bento_image() -> None:
    """BentoML's containerize template: the user's uid and where the bento's source lands."""
    from bentoml._internal.container.generate import BENTO_PATH, BENTO_UID_GID

    ctx = pod_spec(get(objects(), "Deployment", SERVICE))["securityContext"]
    assert ctx["runAsUser"] == BENTO_UID_GID and ctx["runAsNonRoot"]
    assert _env()["QANCHOR_FEATURE_REPO"]["value"] == f"{BENTO_PATH}/src/feature_repo"
    shared = next(m for m in _container()["volumeMounts"] if m["name"] == "shared")
    assert shared["readOnly"] and _env()["BENTOML_HOME"]["value"].startswith(
        shared["mountPath"] + "/"
    )


def _code_text() -> str:
    files = list((REPO / "services").rglob("*.py")) + list((REPO / "qanchor").rglob("*.py"))
    return "\n".join(p.read_text() for p in files)


def test_service_module_matches_the_contract() -> None:
    text = SERVICE_MODULE.read_text()
    assert re.search(rf"^class {SERVICE_CLASS}\b", text, re.M)
    decorator = re.search(r"@bentoml\.service\((.*?)\)\s*\nclass", text, re.S)
    assert decorator and re.search(rf"name\s*=\s*[\"']{BENTO_NAME}[\"']", decorator.group(1))
    code = _code_text()
    missing = [n for n in set(_env()) & SERVICE_ENV if n not in code]
    assert not missing, f"the deployment sets {missing}, which no service or qanchor code reads"


def _included(bento: dict, path: str) -> bool:
    """Whether bentofile's include/exclude patterns take ``path`` into the bento."""

    def match(patterns: list[str]) -> bool:
        for p in patterns:
            p = p.lstrip("/")
            if p.endswith("/") and path.startswith(p):
                return True
            if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.replace("**/", "")):
                return True
        return False

    included = match(bento["include"]) if bento.get("include") else True
    return included and not match(bento.get("exclude") or [])


def test_bentofile_matches_the_contract() -> None:
    bento = yaml.safe_load(BENTOFILE.read_text())
    assert bento["service"] == BENTOFILE_SERVICE
    assert bento.get("name", BENTO_NAME) == BENTO_NAME
    # The deployment points QANCHOR_FEATURE_REPO at the bento's copy of feature_repo/.
    for f in ("feature_repo/definitions.py", "feature_repo/feature_store.redis.yaml"):
        assert _included(bento, f), f"bentofile.yaml does not include {f}"
