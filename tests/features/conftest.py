"""Fixtures of the feature-store tests: a copy of the Feast repo, datasets and a real Redis.

``import feast`` takes about ten seconds, so stores are built once per session where tests
only read them; tests that write (pushes) get their own work directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from feature_helpers import LATER, REPO, copy_built

from qanchor.data import snapshots as S
from qanchor.features import FeatureStoreConfig, sync


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The declarations in a temporary directory: nothing is written into the source tree."""
    return Path(shutil.copytree(REPO, tmp_path_factory.mktemp("repo") / "feature_repo"))


@pytest.fixture(scope="session")
def two_snapshots(
    built_tiny: Path,
    tiny_events: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """``built_tiny`` plus a second snapshot per user, ten days after the cutoff.

    The later rows hold events of the future period (after the cutoff), as a daily snapshot job
    would write them, so a join that ignored time would leak them into training rows.
    """
    root = copy_built(built_tiny, tmp_path_factory.mktemp("pit") / "built")
    users = pd.read_parquet(root / "users.parquet")
    cutoff = users["cutoff"].iloc[0]
    events = pd.concat(tiny_events)
    events = events[events["ts"] < cutoff + LATER]
    index = pd.Index(users["user_id"], name="user_id")
    build = json.loads((root / "manifest.json").read_text())["config"]
    capped = S.cap_events(events, build["source_caps"], build["max_events_per_source"])
    later = S.snapshot_lists(capped, index, cutoff + LATER).merge(
        S.bag_lists(events, index, build["max_bag_texts"]), on="user_id"
    )
    sources = sorted(events["source"].unique())
    later_agg = S.aggregates(events, index, sources, cutoff + LATER)
    for name, new in (("snapshots.parquet", later), ("aggregates.parquet", later_agg)):
        old = pd.read_parquet(root / name)
        pd.concat([old, new[old.columns]], ignore_index=True).to_parquet(root / name, index=False)
    return root


@pytest.fixture(scope="session")
def sqlite_store(two_snapshots: Path, repo_copy: Path) -> FeatureStoreConfig:
    """The embedded profile over ``two_snapshots``, applied and materialised."""
    cfg = FeatureStoreConfig(data=str(two_snapshots), repo=str(repo_copy))
    sync(cfg)
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (no persistence), stopped after the session.

    On CI (``CI`` set; ``.ci/run`` installs the Debian package) a missing server fails the
    tests; elsewhere they skip with the reason.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        msg = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    port = free_port()
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_redis(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for_redis(port: int, proc: subprocess.Popen) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING within 5 s")
