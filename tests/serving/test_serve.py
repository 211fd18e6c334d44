"""The service as a real ``bentoml serve`` process on 127.0.0.1: one embed call end to end."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.launch import ServerProcess

from .conftest import AUTH, KEY, SCENARIOS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bentoml_serve_embeds_over_http(
    serving_env, served_tag: str, users, tmp_path: Path
) -> None:
    env = {**os.environ, **serving_env, "PYTHONUNBUFFERED": "1", "BENTOML_DO_NOT_TRACK": "True"}
    log = tmp_path / "serve.log"
    with ServerProcess(free_port(), env, log) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/livez").status_code == 200
            body = {"user_id": users[0], "scenario": SCENARIOS[0]}
            assert http.post("/embed", json=body).status_code == 401
            first = http.post("/embed", json=body, headers=AUTH)
            assert first.status_code == 200, first.text
            assert first.json()["model_version"] == served_tag and not first.json()["prefix_cached"]
            second = http.post("/embed", json={**body, "scenario": SCENARIOS[1]}, headers=AUTH)
            assert second.json()["prefix_cached"]
            assert (
                http.post("/embed", json={**body, "user_id": "nobody"}, headers=AUTH).status_code
                == 404
            )
            metrics = http.get("/metrics").text
    values = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert values["qanchor_prefix_cache_hits_total"] == 1
    assert values["qanchor_prefix_cache_misses_total"] == 1
    assert 0 < values["qanchor_prefix_cache_bytes"] <= values["qanchor_prefix_cache_max_bytes"]
    assert KEY not in log.read_text()  # the key never reaches the service's log
