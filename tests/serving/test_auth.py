"""Access control: every API needs the bearer key; probes and metrics stay open."""

from __future__ import annotations

import pytest

from qanchor.errors import QAnchorError
from qanchor.serving.auth import authorized, load_api_key

from .conftest import KEY, SCENARIOS

ROUTES = {
    "/embed": {"user_id": "u000001", "scenario": SCENARIOS[0]},
    "/embed_batch": {"user_ids": ["u000001"], "scenarios": SCENARIOS},
    "/explain": {"user_id": "u000001", "query": "q?"},
    "/scenarios": {},
    "/push": {"events": []},
}
BAD = {
    "no header": {},
    "wrong key": {"Authorization": "Bearer not-the-key-0123456789"},
    "key plus a character": {"Authorization": f"Bearer {KEY}x"},
    "basic scheme": {"Authorization": f"Basic {KEY}"},
    "bare key": {"Authorization": KEY},
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("headers", list(BAD.values()), ids=list(BAD))
def test_apis_need_the_key(client, route: str, headers: dict) -> None:
    got = client.post(route, json=ROUTES[route], headers=headers)
    assert got.status_code == 401
    assert got.headers["www-authenticate"].startswith("Bearer")
    assert KEY not in got.text


def test_docs_need_the_key_too(client) -> None:
    assert client.get("/docs.json").status_code == 401


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics"])
def test_probes_and_metrics_are_open(client, path: str) -> None:
    assert client.get(path).status_code == 200


def test_authorized() -> None:
    assert authorized(f"Bearer {KEY}", KEY) and authorized(f"bearer  {KEY} ", KEY)
    assert not authorized(None, KEY) and not authorized("Bearer ", KEY)
    assert not authorized(f"Bearer {KEY[:-1]}", KEY)


def test_key_from_env_or_secret_file(tmp_path) -> None:
    secret = tmp_path / "api_key"
    secret.write_text(KEY + "\n")
    assert load_api_key({"QANCHOR_API_KEY_FILE": str(secret)}) == KEY
    assert load_api_key({"QANCHOR_API_KEY": KEY, "QANCHOR_API_KEY_FILE": "/nonexistent"}) == KEY
    with pytest.raises(QAnchorError, match="QANCHOR_API_KEY"):
        load_api_key({})
    with pytest.raises(QAnchorError, match="cannot read") as err:
        load_api_key({"QANCHOR_API_KEY_FILE": str(tmp_path / "missing")})
    assert "missing" not in str(err.value)  # names the variable, not the path's content
    with pytest.raises(QAnchorError, match="at least 16") as err:
        load_api_key({"QANCHOR_API_KEY": "short-key"})
    assert "short-key" not in str(err.value)  # never echoes the key


def test_key_settings_read_the_process_environment(tmp_path, monkeypatch) -> None:
    from qanchor.serving.auth import KeySettings

    monkeypatch.setenv("QANCHOR_API_KEY", KEY)
    assert load_api_key() == KEY
    assert KEY not in repr(KeySettings()) and KEY not in str(KeySettings().key)
    # A mapping is the whole environment: the process's key does not leak into it.
    with pytest.raises(QAnchorError, match="no API key"):
        load_api_key({"QANCHOR_API_KEY": ""})
    # An empty variable is unset (a manifest's `QANCHOR_API_KEY: ""`): the file is read.
    secret = tmp_path / "api_key"
    secret.write_text(KEY)
    monkeypatch.setenv("QANCHOR_API_KEY", "")
    monkeypatch.setenv("QANCHOR_API_KEY_FILE", str(secret))
    assert load_api_key() == KEY
