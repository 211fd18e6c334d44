"""The prefix cache across requests: pushes and model swaps miss it, counters reach /metrics."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import prometheus_client

from qanchor import registry
from qanchor.features import FeatureStoreConfig, online_snapshots, push_events
from qanchor.serving.config import ServingConfig
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
        swapped = embed(client, user)
        assert swapped["model_version"] == new_tag and not swapped["prefix_cached"]
    finally:
        registry.promote(served_tag, "test swap back")
    back = embed(client, user)
    assert back["model_version"] == served_tag and not back["prefix_cached"]  # dropped on swap


def test_a_small_cache_evicts_and_stays_in_bounds(serving_env, users: list[str]) -> None:
    """The library service alone, with room for about three prefixes."""
    reg = prometheus_client.CollectorRegistry()
    factory = SimpleNamespace(
        Counter=lambda *a, **k: prometheus_client.Counter(*a, registry=reg, **k),
        Gauge=lambda *a, **k: prometheus_client.Gauge(*a, registry=reg, **k),
    )
    cfg = ServingConfig.from_env(serving_env, reload_seconds=0)
    probe = EmbeddingService(cfg)
    probe.embed(users[20], SCENARIOS[0])
    one = probe.cache.bytes
    svc = EmbeddingService(
        ServingConfig.from_env(serving_env, cache_bytes=3 * one + one // 2), factory
    )
    for u in users[20:30]:
        svc.embed(u, SCENARIOS[0])
        assert svc.cache.bytes <= svc.cache.max_bytes
    assert reg.get_sample_value("qanchor_prefix_cache_evictions_total") >= 6
    assert reg.get_sample_value("qanchor_prefix_cache_misses_total") == 10
