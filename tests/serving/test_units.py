"""Library pieces without a model: adaptive batching, the config from the environment."""

from __future__ import annotations

import threading
import time

import pytest

from qanchor.errors import QAnchorError
from qanchor.serving.batcher import AdaptiveBatcher
from qanchor.serving.config import ENV, ServingConfig


def test_concurrent_jobs_are_merged_and_keep_their_own_errors() -> None:
    started, release, sizes = threading.Event(), threading.Event(), []

    def run(jobs: list[int]) -> list:
        sizes.append(len(jobs))
        if len(sizes) == 1:  # hold the model so the other requests queue up behind it
            started.set()
            release.wait(10)
        return [ValueError(f"bad {j}") if j % 3 == 0 else j * 10 for j in jobs]

    batcher = AdaptiveBatcher(run, max_size=100, max_wait_s=0.0)
    results: dict[int, object] = {}

    def call(j: int) -> None:
        try:
            results[j] = batcher.submit(j)
        except ValueError as exc:
            results[j] = str(exc)

    first = threading.Thread(target=call, args=(1,))
    first.start()
    started.wait(10)
    rest = [threading.Thread(target=call, args=(j,)) for j in range(2, 8)]
    for t in rest:
        t.start()
    while batcher._queue.qsize() < 6:  # all six wait behind the running batch
        time.sleep(0.001)
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert sizes == [1, 6]
    assert results == {1: 10, 2: 20, 3: "bad 3", 4: 40, 5: 50, 6: "bad 6", 7: 70}


def test_a_batch_never_exceeds_max_size() -> None:
    gate, sizes = threading.Event(), []

    def run(jobs: list[int]) -> list[int]:
        gate.wait(10)
        sizes.append(sum(jobs))
        return jobs

    batcher = AdaptiveBatcher(run, max_size=10, max_wait_s=0.0, size=lambda j: j)
    threads = [threading.Thread(target=batcher.submit, args=(j,)) for j in (4, 4, 4, 6, 6)]
    for t in threads:
        t.start()
        time.sleep(0.01)  # a fixed arrival order
    gate.set()
    for t in threads:
        t.join(10)
    assert sum(sizes) == 24 and max(sizes) <= 10


def test_a_failing_run_fails_its_batch_only() -> None:
    calls = []

    def run(jobs: list[int]) -> list[int]:
        calls.append(jobs)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return jobs

    batcher = AdaptiveBatcher(run, max_size=4)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(1)
    assert batcher.submit(2) == 2


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    env = {"QANCHOR_CACHE_BYTES": "1024", "QANCHOR_MODEL_TAG": "qanchor:abc", "QANCHOR_ONLINE_STORE": "redis",
           "QANCHOR_FEATURE_DATA": "/data/built", "QANCHOR_REDIS_URL": "", "UNRELATED": "x"}  # fmt: skip
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    cfg = ServingConfig.from_env(max_batch_pairs=8)
    assert (cfg.cache_bytes, cfg.model_tag, cfg.max_batch_pairs) == (1024, "qanchor:abc", 8)
    store = cfg.features  # the feature store variables fill the nested FeatureStoreConfig
    assert (store.data, store.online_store, store.redis_url) == ("/data/built", "redis", None)
    assert store.repo == "feature_repo"  # unset: the default
    monkeypatch.setenv("QANCHOR_CACHE_BYTES", "lots")
    with pytest.raises(QAnchorError, match=r"QANCHOR_CACHE_BYTES.*cache_bytes"):
        ServingConfig.from_env()


def test_make_serve_generates_a_private_key_and_never_prints_it(tmp_path) -> None:
    from services.launch import ensure_key

    env: dict[str, str] = {}
    shown = ensure_key(env, tmp_path / "home" / "api_key")
    path = tmp_path / "home" / "api_key"
    key = path.read_text().strip()
    assert len(key) >= 32 and (path.stat().st_mode & 0o777) == 0o600
    assert env["QANCHOR_API_KEY_FILE"] == str(path) and key not in shown and "cat" in shown
    assert ensure_key(env, path) == shown and path.read_text().strip() == key  # kept, not replaced
    assert ensure_key({"QANCHOR_API_KEY": "k" * 20}, path) == "$QANCHOR_API_KEY"
