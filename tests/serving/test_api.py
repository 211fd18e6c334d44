"""The service through its ASGI app: answers, error codes, the prefix cache across requests."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import AUTH, SCENARIOS


def post(client, route: str, body: dict, headers: dict | None = None):
    return client.post(f"/{route}", json=body, headers=AUTH if headers is None else headers)


def test_embed_a_scenario_then_hit_the_cache(client, users: list[str]) -> None:
    user = users[0]
    first = post(client, "embed", {"user_id": user, "scenario": SCENARIOS[0]})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["user_id"] == user and body["scenario"] == SCENARIOS[0]
    assert body["model_version"].startswith("qanchor:") and len(body["feature_version"]) == 16
    assert np.isclose(np.linalg.norm(body["vector"]), 1.0, atol=1e-4)
    second = post(client, "embed", {"user_id": user, "scenario": SCENARIOS[1]}).json()
    assert not body["prefix_cached"] and second["prefix_cached"]
    again = post(client, "embed", {"user_id": user, "scenario": SCENARIOS[0]}).json()
    np.testing.assert_allclose(again["vector"], body["vector"], atol=1e-5)


def test_free_text_query(client, users: list[str]) -> None:
    got = post(client, "embed", {"user_id": users[1], "query": "Will this user travel soon?"})
    assert got.status_code == 200, got.text
    assert got.json()["scenario"] is None and got.json()["query"] == "Will this user travel soon?"


def test_embed_batch_matches_single_embeds(client, users: list[str]) -> None:
    body = {"user_ids": users[2:5], "scenarios": SCENARIOS, "queries": ["Is this user new?"]}
    got = post(client, "embed_batch", body)
    assert got.status_code == 200, got.text
    res = got.json()
    assert res["columns"] == [*SCENARIOS, "Is this user new?"]
    vecs = np.asarray(res["vectors"])
    assert vecs.shape[:2] == (3, 3)
    single = post(client, "embed", {"user_id": users[3], "scenario": SCENARIOS[1]}).json()
    np.testing.assert_allclose(vecs[1, 1], single["vector"], atol=1e-5)


def test_scenarios_lists_names_queries_and_adapter_versions(client) -> None:
    got = client.post("/scenarios", json={}, headers=AUTH).json()
    assert [s["name"] for s in got["scenarios"]] == SCENARIOS
    assert all(len(s["adapter_version"]) == 12 and s["query"] for s in got["scenarios"])


def test_explain(client, users: list[str]) -> None:
    got = post(client, "explain", {"user_id": users[0], "scenario": SCENARIOS[0], "max_tokens": 4})
    assert got.status_code == 200, got.text
    assert isinstance(got.json()["text"], str) and got.json()["query"]


@pytest.mark.parametrize(
    ("route", "body", "status"),
    [
        ("embed", {"user_id": "nobody", "scenario": SCENARIOS[0]}, 404),
        ("embed_batch", {"user_ids": ["nobody"], "scenarios": SCENARIOS}, 404),
        ("explain", {"user_id": "nobody", "query": "q?"}, 404),
        ("embed", {"user_id": "USER", "scenario": "no_such_scenario"}, 400),
        ("embed_batch", {"user_ids": ["USER"], "scenarios": ["no_such_scenario"]}, 400),
        ("embed", {"user_id": "USER"}, 400),  # neither scenario nor query
        ("embed", {"user_id": "USER", "scenario": SCENARIOS[0], "query": "q"}, 400),
        ("embed", {"scenario": SCENARIOS[0]}, 400),  # malformed: no user_id
        ("embed", {"user_id": 5, "scenario": [1]}, 400),
        ("embed", {"user_id": "USER", "query": " \t\n "}, 400),  # whitespace only
        ("embed_batch", {"user_ids": ["USER"], "queries": ["  "]}, 400),
        ("explain", {"user_id": "USER", "query": "q?", "max_tokens": True}, 400),  # not 1
        ("explain", {"user_id": "USER", "query": "q?", "max_tokens": 2.5}, 400),
        ("embed_batch", {"user_ids": ["USER"] * 513, "scenarios": SCENARIOS}, 413),
    ],
)
def test_errors(client, users: list[str], route: str, body: dict, status: int) -> None:
    body = {
        k: (
            [users[0] if u == "USER" else u for u in v]
            if isinstance(v, list)
            else (users[0] if v == "USER" else v)
        )
        for k, v in body.items()
    }
    got = post(client, route, body)
    assert got.status_code == status, got.text
    if status == 400 and "no_such_scenario" in str(body):
        assert got.json()["valid"] == SCENARIOS and "no_such_scenario" in got.json()["error"]


def test_unparseable_body_is_a_client_error(client) -> None:
    got = client.post(
        "/embed", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert got.status_code == 400


def test_oversized_body_is_413(client) -> None:
    got = client.post("/embed", content=b"x" * ((1 << 20) + 1), headers=AUTH)
    assert got.status_code == 413


@pytest.mark.parametrize(
    "kind", ["multipart/form-data", "application/x-www-form-urlencoded", "text/plain"]
)
def test_json_only(client, users: list[str], kind: str) -> None:
    body = b'{"user_id": "%s", "query": "q?"}' % users[0].encode()
    got = client.post("/embed", content=body, headers={**AUTH, "Content-Type": kind})
    assert got.status_code == 415, got.text


def test_a_bad_request_is_one_info_line_and_a_server_error_stays_an_error(
    client, users: list[str], caplog
) -> None:
    import logging

    from qanchor.serving.http import BENTOML_REQUEST_LOGGER

    with caplog.at_level(logging.INFO):
        got = post(client, "explain", {"user_id": users[0], "query": "q?", "max_tokens": True})
    assert got.status_code == 400
    mine = [r for r in caplog.records if r.name == BENTOML_REQUEST_LOGGER]
    assert mine, "BentoML logged nothing for the 400: the filter was not exercised"
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in mine)
    assert "client error on /explain" in mine[-1].getMessage() and "400" in mine[-1].getMessage()

    # The same logger's record of an unexpected exception (a 500) is left as it was.
    record = logging.LogRecord(BENTOML_REQUEST_LOGGER, logging.ERROR, __file__, 1,
                               "Exception on %s [%s]", ("/embed", "POST"), None)  # fmt: skip
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    for f in logging.getLogger(BENTOML_REQUEST_LOGGER).filters:
        f.filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
