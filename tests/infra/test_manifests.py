"""infra/ parses, validates against the Kubernetes schemas, and hangs together (names, refs)."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from .contract import (
    INFRA,
    K8S_VERSION,
    NAMESPACE,
    NOT_OBJECTS,
    SECRETS_TEMPLATE,
    containers,
    get,
    load_docs,
    manifest_files,
    objects,
    pod_spec,
)


def test_every_yaml_under_infra_parses() -> None:
    files = sorted(INFRA.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert load_docs(path), f"{path} is empty"


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_objects_validate_against_the_kubernetes_schemas(path) -> None:
    import kubernetes_validate

    for doc in load_docs(path):
        # strict: unknown fields (a misspelt probe, a stray key) fail too.
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def test_the_validator_catches_a_misspelt_field() -> None:
    import kubernetes_validate

    deployment = copy.deepcopy(get(objects(), "Deployment", "qanchor-service"))
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = load_docs(INFRA / "kustomization.yaml")[0]
    listed = {INFRA / r for r in kustomization["resources"]}
    assert all(p.is_file() for p in listed)
    assert listed == set(manifest_files()) - {SECRETS_TEMPLATE}
    assert kustomization["namespace"] == NAMESPACE
    # Every image a manifest names can be pointed at another registry from here.
    images = {c["image"].rpartition(":")[0] for _, c in containers()}
    mapped = {i["name"] for i in kustomization["images"]}
    assert {i for i in images if i.startswith("registry.example.com/")} <= mapped


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed"
)
def test_kustomize_renders_valid_objects() -> None:
    import kubernetes_validate

    out = subprocess.run(["kubectl", "kustomize", str(INFRA)], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert len(docs) == len(objects())
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == NAMESPACE


def test_objects_do_not_pin_another_namespace() -> None:
    for obj in objects(with_template=True):
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_referenced_config_maps_and_claims_exist() -> None:
    objs = objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for obj in objs:
        ps = pod_spec(obj)
        if not ps:
            continue
        for vol in ps.get("volumes", []):
            if claim := vol.get("persistentVolumeClaim"):
                assert ("PersistentVolumeClaim", claim["claimName"]) in names
        for c in ps["containers"]:
            for ref in c.get("envFrom", []):
                assert ("ConfigMap", ref["configMapRef"]["name"]) in names
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            declared = {v["name"] for v in ps.get("volumes", [])} | {
                t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])
            }
            assert mounts <= declared, obj["metadata"]["name"]


def _secret_refs() -> set[tuple[str, str]]:
    """(secret, key) pairs the manifests and the Helm values read."""
    from .contract import HELM_VALUES

    refs = set()
    for _, c in containers():
        for env in c.get("env", []):
            if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                refs.add((ref["name"], ref["key"]))
    values = load_docs(HELM_VALUES)[0]
    refs |= {(s["secretName"], s["secretKey"]) for s in values["secret"]}
    refs |= {
        (v["secret"]["secretName"], "passwords.json") for v in values["volumes"] if "secret" in v
    }
    refs.add((values["data"]["metadataSecretName"], "connection"))
    return refs


def test_every_secret_read_is_templated_and_documented() -> None:
    template = {
        (d["metadata"]["name"], k) for d in load_docs(SECRETS_TEMPLATE) for k in d["stringData"]
    }
    assert _secret_refs() <= template
    # No real value in the template, and a `kubectl create secret` line for each in the docs.
    assert all("REPLACE-ME" in str(d["stringData"]) for d in load_docs(SECRETS_TEMPLATE))
    deploy = (INFRA.parent / "docs" / "deploy.md").read_text()
    for name in {n for n, _ in template}:
        assert f"create secret generic {name}" in deploy, name


def test_the_redis_url_names_the_redis_service() -> None:
    service = get(objects(), "Service", "qanchor-redis")
    url = next(d for d in load_docs(SECRETS_TEMPLATE) if d["metadata"]["name"] == "qanchor-redis")
    host_port = url["stringData"]["url"].split(",")[0]
    assert host_port == f"qanchor-redis:{service['spec']['ports'][0]['port']}"


def test_manifests_carry_no_scripts() -> None:
    """One command line per container: no shell, no inline script."""
    for obj, c in containers():
        command = c.get("command", []) + c.get("args", [])
        assert command[:1] not in (["sh"], ["bash"], ["/bin/sh"], ["/bin/bash"]), obj["metadata"][
            "name"
        ]
        assert not any("\n" in part for part in command)


def test_no_file_outside_the_kustomization_is_a_stray_object() -> None:
    for path in NOT_OBJECTS:
        assert "kind" not in load_docs(path)[0] or path.name == "kustomization.yaml"


def test_every_infra_file_is_indexed_and_the_walkthrough_covers_the_steps() -> None:
    index = (INFRA / "README.md").read_text()
    for path in INFRA.rglob("*"):
        if path.is_file() and path.name != "README.md":
            rel = path.relative_to(INFRA)
            assert f"`{rel}`" in index or f"`{rel.parent}/`" in index or rel.name in index, rel
    deploy = (INFRA.parent / "docs" / "deploy.md").read_text()
    for step in ("docker build -f infra/Containerfile", "bentoml containerize qanchor:latest",
                 "kubectl apply -k infra/", "helm upgrade --install airflow", "make compile",
                 "qanchor_retrain", "rollout restart deploy/qanchor-service", "qanchor_drift",
                 "port-forward svc/qanchor-evidently-ui", "torchrun"):  # fmt: skip
        assert step in deploy, step
