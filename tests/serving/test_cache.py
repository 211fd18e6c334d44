"""The prefix cache across requests: pushes and model swaps miss it, counters reach /metrics."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import prometheus_client
import pytest

from qanchor import registry
from qanchor.features import FeatureStoreConfig, online_snapshots, push_events
from qanchor.serving.config import ServingConfig
from qanchor.serving.schemas import NotServing
from qanchor.serving.service import EmbeddingService

from .conftest import SCENARIOS
from .test_api import post


def embed(client, user: str) -> dict:
    got = post(client, "embed", {"user_id": user, "scenario": SCENARIOS[0]})
    assert got.status_code == 200, got.text
    return got.json()


def new_event(store: FeatureStoreConfig, user: str, text: str) -> dict:
    """An event of a source the user already has (so the model reads it), stamped now."""
    source = str(online_snapshots(store, [user]).snapshots["event_source"][0][-1])
    return {
        "user_id": user,
        "ts": datetime.now(UTC).isoformat(),
        "source": source,
        "text": text,
        "value": 1.0,
    }


def test_push_invalidates_the_users_prefix(client, store, users: list[str]) -> None:
    user = users[10]
    before = embed(client, user)
    assert embed(client, user)["prefix_cached"]
    event = new_event(store, user, "bought a sailing boat")
    got = post(client, "push", {"events": [event]})
    assert got.status_code == 200, got.text
    res = got.json()
    assert res["stale"] == [user] and res["invalidated"] == 1
    after = embed(client, user)
    assert not after["prefix_cached"] and after["feature_version"] == res["versions"][user]
    assert after["feature_version"] != before["feature_version"]
    assert not np.allclose(after["vector"], before["vector"], atol=1e-6)  # the new event counts
    redelivered = post(client, "push", {"events": [event]})
    assert redelivered.json()["stale"] == []  # the same event again changes nothing


def test_push_refuses_unknown_users_and_future_events(client, store, users: list[str]) -> None:
    event = new_event(store, users[13], "rented a car")
    stranger = {**event, "user_id": "nobody-like-this"}
    got = post(client, "push", {"events": [event, stranger]})
    assert got.status_code == 404 and got.json()["unknown"] == ["nobody-like-this"]
    assert (
        post(client, "embed", {"user_id": "nobody-like-this", "scenario": SCENARIOS[0]}).status_code
        == 404
    )
    future = {**event, "ts": "2200-01-01T00:00:00+00:00"}
    got = post(client, "push", {"events": [future]})
    assert got.status_code == 400 and "dated after now" in got.json()["error"]
    # An explicit create adds the new user, whom /embed then serves.
    created = post(client, "push", {"events": [stranger], "create": True})
    assert created.status_code == 200 and created.json()["stale"] == ["nobody-like-this"]
    assert (
        post(client, "embed", {"user_id": "nobody-like-this", "scenario": SCENARIOS[0]}).status_code
        == 200
    )


def test_features_changed_elsewhere_miss_by_version(client, store, users: list[str]) -> None:
    """A push by another process (no hook here): the new feature version alone misses."""
    user = users[11]
    before = embed(client, user)
    frame = pd.DataFrame([new_event(store, user, "moved to a new city")])
    push_events(store, frame.assign(ts=pd.to_datetime(frame["ts"], utc=True)))
    after = embed(client, user)
    assert not after["prefix_cached"] and after["feature_version"] != before["feature_version"]


def test_a_promoted_model_is_served_and_misses_the_cache(
    client, tuned_model: Path, served_tag: str, users, tmp_path
) -> None:
    user = users[12]
    embed(client, user)
    assert embed(client, user)["prefix_cached"]
    other = shutil.copytree(tuned_model, tmp_path / "model")
    (other / "NOTE").write_text("same weights, another registry version")
    new_tag = registry.register(other)
    try:
        registry.promote(new_tag, "test swap")
        swapped = embed_until(client, user, new_tag)
        assert not swapped["prefix_cached"]
    finally:
        registry.promote(served_tag, "test swap back")
    back = embed_until(client, user, served_tag)
    assert not back["prefix_cached"]  # dropped on swap


def embed_until(client, user: str, tag: str, tries: int = 600) -> dict:
    """Embed until the answer comes from ``tag``: the promoted model is loaded in the
    background while the old one keeps answering."""
    for _ in range(tries):
        got = embed(client, user)
        if got["model_version"] == tag:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{tag} was never served")


def test_requests_are_answered_by_the_old_model_while_the_new_one_loads(
    serving_vars, tuned_model: Path, served_tag: str, users: list[str], tmp_path: Path, monkeypatch
) -> None:
    from qanchor.serving.model import ServedModel

    svc = EmbeddingService(ServingConfig.from_env(reload_seconds=0))
    other = shutil.copytree(tuned_model, tmp_path / "model")
    (other / "NOTE").write_text("another version")
    new_tag = registry.register(other)
    # The real load, held until the test lets it finish: the swap is pending that long.
    real, release = ServedModel.load.__func__, threading.Event()

    def held(cls, *args, **kwargs):
        model = real(cls, *args, **kwargs)
        release.wait(60)
        return model

    monkeypatch.setattr(ServedModel, "load", classmethod(held))
    loader = threading.Thread(target=svc.reload, args=(new_tag,))
    loader.start()
    during = [svc.embed(u, SCENARIOS[0]) for u in users[30:33]]
    assert loader.is_alive() and {r.model_version for r in during} == {served_tag}
    release.set()
    loader.join(60)
    after = svc.embed(users[30], SCENARIOS[0])
    assert after.model_version == new_tag and not after.prefix_cached


def test_a_small_cache_evicts_and_stays_in_bounds(serving_vars, users: list[str]) -> None:
    """The library service alone, with room for about three prefixes."""
    reg = prometheus_client.CollectorRegistry()
    factory = SimpleNamespace(
        Counter=lambda *a, **k: prometheus_client.Counter(*a, registry=reg, **k),
        Gauge=lambda *a, **k: prometheus_client.Gauge(*a, registry=reg, **k),
    )
    cfg = ServingConfig.from_env(reload_seconds=0)
    probe = EmbeddingService(cfg)
    probe.embed(users[20], SCENARIOS[0])
    one = probe.cache.bytes
    svc = EmbeddingService(ServingConfig.from_env(cache_bytes=3 * one + one // 2), factory)
    for u in users[20:30]:
        svc.embed(u, SCENARIOS[0])
        assert svc.cache.bytes <= svc.cache.max_bytes
    assert reg.get_sample_value("qanchor_prefix_cache_evictions_total") >= 6
    assert reg.get_sample_value("qanchor_prefix_cache_misses_total") == 10


def other_spec_model(tuned_model: Path, tmp_path: Path) -> str:
    """The served model's weights with a recorded feature spec of other caps, registered."""
    other = shutil.copytree(tuned_model, tmp_path / "other-spec")
    config = json.loads((other / "config.json").read_text())
    config["feature_spec"]["max_events_per_source"] += 5
    (other / "config.json").write_text(json.dumps(config))
    return registry.register(other)


def test_a_store_built_for_other_features_is_refused(
    serving_vars, tuned_model: Path, served_tag: str, users: list[str], tmp_path: Path
) -> None:
    tag = other_spec_model(tuned_model, tmp_path)
    svc = EmbeddingService(ServingConfig.from_env(model_tag=tag, reload_seconds=0))
    assert not svc.ready() and "max_events_per_source" in svc.refusal
    with pytest.raises(NotServing, match="trained on features of another shape"):
        svc.embed(users[0], SCENARIOS[0])
    with pytest.raises(NotServing):
        svc.push([])
    # A running service does not swap to such a model: it keeps serving the one it has.
    ok = EmbeddingService(ServingConfig.from_env(reload_seconds=0))
    assert ok.ready() and not ok.reload(tag) and ok.model.version == served_tag
    assert ok.embed(users[0], SCENARIOS[0]).model_version == served_tag
