"""A property-based fuzz of the service's OpenAPI document: no input earns a 5xx.

Schemathesis turns the schema BentoML publishes into Hypothesis strategies, schema-conforming
(positive) and schema-violating (negative) requests for every API, sent through the ASGI app
with the key, and without it (401). Examples are bounded so the fuzz takes seconds.
(Schemathesis' pytest loader ``from_fixture`` fails on pytest 9, hence the strategies.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from .conftest import AUTH, SCENARIOS

EXAMPLES = 20
ROUTES = ["/embed", "/embed_batch", "/explain", "/scenarios", "/push"]


@pytest.fixture(scope="module")
def schema(client):
    spec = client.get("/docs.json", headers=AUTH)
    assert spec.status_code == 200
    return schemathesis.openapi.from_dict(spec.json())


def with_known_names(body: object, users: list[str]) -> None:
    """Swap generated user ids and scenario names for real ones (free-text queries stay random),
    so conforming requests also reach the model, not only the 404/400 answers."""
    if not isinstance(body, dict):
        return
    if isinstance(body.get("user_id"), str):
        body["user_id"] = users[0]
    if isinstance(body.get("user_ids"), list):
        body["user_ids"] = users[: len(body["user_ids"])]
    if "user_id" in body and body.get("query") is None:
        body["scenario"] = SCENARIOS[0]  # exactly one of scenario and query
    elif "user_id" in body:
        body.pop("scenario", None)
    if isinstance(body.get("scenarios"), list):
        body["scenarios"] = [SCENARIOS[i % 2] for i in range(len(body["scenarios"]))]


def send(client, case, headers: dict | None):
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")  # httpx names a raw body `content`
    kwargs.pop("allow_redirects", None)
    return client.request(**kwargs)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("route", ROUTES)
def test_no_server_error(client, schema, users, route: str, mode: GenerationMode) -> None:
    @given(case=schema[route]["POST"].as_strategy(generation_mode=mode), known=st.booleans())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case, known: bool) -> None:
        if known:
            with_known_names(case.body, users)
        got = send(client, case, AUTH)
        assert got.status_code < 500, f"{route} {case.body!r} -> {got.status_code} {got.text}"

    check()


@pytest.mark.parametrize("route", ROUTES)
def test_without_the_key_every_request_is_401(client, schema, route: str) -> None:
    @given(case=schema[route]["POST"].as_strategy())
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        assert send(client, case, None).status_code == 401

    check()
