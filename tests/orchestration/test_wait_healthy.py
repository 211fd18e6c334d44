"""`make airflow` prints its banner only once Airflow's health endpoint says healthy."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import DAGS


def _local_helper():
    """``dags/local.py`` (the shell beside the DAGs, not an importable package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("qanchor_dags_local", DAGS / "local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wait_healthy = _local_helper().wait_healthy


@pytest.fixture
def health_server():
    """A local server answering the health JSON; answers[i] is the i-th reply (last repeats)."""
    answers: list = []
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = answers[min(len(calls), len(answers) - 1)]
            calls.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v2/monitor/health"
    yield url, answers, calls
    server.shutdown()


def _health(db: str, scheduler: str) -> str:
    return json.dumps({"metadatabase": {"status": db}, "scheduler": {"status": scheduler}})


def test_waits_until_database_and_scheduler_are_healthy(health_server) -> None:
    url, answers, calls = health_server
    answers += [
        "<html>starting</html>",
        _health("healthy", "unhealthy"),
        _health("healthy", "healthy"),
    ]
    assert wait_healthy(url, lambda: True, timeout=30, every=0.01)
    assert len(calls) == 3 and calls[0] == "/api/v2/monitor/health"


def test_gives_up_when_a_component_exits_or_time_runs_out(health_server) -> None:
    url, answers, calls = health_server
    answers.append(_health("healthy", "unhealthy"))
    assert not wait_healthy(url, lambda: False, timeout=30, every=0.01)
    assert calls == []  # a dead component: no polling at all
    assert not wait_healthy(url, lambda: True, timeout=0.2, every=0.01)
    assert calls
