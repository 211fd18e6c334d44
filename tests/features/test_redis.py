"""The production profile: Redis online store, against a real redis-server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from feature_helpers import as_lists, assert_profiles_equal

from qanchor.errors import QAnchorError
from qanchor.features import FeatureStoreConfig, online_snapshots, push_events, sync
from qanchor.features.config import REDIS_ENV, repo_config


@pytest.fixture(scope="module")
def redis_store(
    redis_url: str, two_snapshots: Path, repo_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> FeatureStoreConfig:
    cfg = FeatureStoreConfig(data=str(two_snapshots), repo=str(repo_copy), online_store="redis",
                             redis_url=redis_url, work_dir=str(tmp_path_factory.mktemp("redis")))  # fmt: skip
    sync(cfg)
    return cfg


def test_redis_serves_what_sqlite_serves(
    redis_store: FeatureStoreConfig, sqlite_store: FeatureStoreConfig, two_snapshots: Path
) -> None:
    users = pd.read_parquet(two_snapshots / "users.parquet")["user_id"].tolist()
    from_redis = online_snapshots(redis_store, users)
    from_sqlite = online_snapshots(sqlite_store, users)
    assert as_lists(from_redis.snapshots) == as_lists(from_sqlite.snapshots)
    assert (
        from_redis.snapshots["snapshot_ts"].tolist()
        == from_sqlite.snapshots["snapshot_ts"].tolist()
    )
    assert_profiles_equal(from_redis.profiles, pd.read_parquet(two_snapshots / "profiles.parquet"))
    assert from_redis.versions() == from_sqlite.versions()


def test_redis_push_is_served_even_twice_within_a_second(
    redis_url: str, built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    # db=1: its own key space, the other store's rows stay as they are.
    cfg = FeatureStoreConfig(data=str(built_tiny), repo=str(repo_copy), online_store="redis",
                             redis_url=f"{redis_url},db=1", work_dir=str(tmp_path))  # fmt: skip
    sync(cfg)
    user = pd.read_parquet(built_tiny / "users.parquet")["user_id"].iloc[0]
    texts = []
    for i in range(2):  # Redis keeps a row only if its time is newer, at one-second resolution
        ev = pd.DataFrame({"user_id": [user], "ts": [pd.Timestamp("2026-11-01", tz="UTC")],
                           "source": ["search"], "text": [f"searched: tents {i}"]})  # fmt: skip
        assert push_events(cfg, ev).stale == {user}
        texts.append(as_lists(online_snapshots(cfg, [user]).snapshots)[user]["event_text"])
    assert "searched: tents 0" in texts[0] and {"searched: tents 0", "searched: tents 1"} <= set(
        texts[1]
    )


def test_redis_profile_reads_the_url_from_the_environment(
    repo_copy: Path, built_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = FeatureStoreConfig(data=str(built_tiny), repo=str(repo_copy), online_store="redis",
                             work_dir=str(tmp_path))  # fmt: skip
    monkeypatch.delenv(REDIS_ENV, raising=False)
    with pytest.raises(QAnchorError, match=REDIS_ENV):
        repo_config(cfg)
    monkeypatch.setenv(REDIS_ENV, "redis-host:6380,db=2")
    rc = repo_config(cfg)
    assert rc.online_store.type == "redis"
    assert rc.online_store.connection_string == "redis-host:6380,db=2"
    assert rc.registry.path == str(tmp_path.resolve() / "registry.db")
