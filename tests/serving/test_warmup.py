"""The warm-up: a service is warm before it is ready, a failed warm-up keeps it unready, a
model is warmed up before it is swapped in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from qanchor import registry
from qanchor.features import FeatureStoreConfig, sync
from qanchor.serving.config import ServingConfig
from qanchor.serving.schemas import NotServing
from qanchor.serving.service import EmbeddingService
from qanchor.serving.warmup import warm_up

from .conftest import REPO, SCENARIOS

# A fresh interpreter: what the first embed after construction imports is what a fresh
# service's first request would have paid for.
FRESH = """
import json, sys
from qanchor.serving.config import ServingConfig
from qanchor.serving.service import EmbeddingService
svc = EmbeddingService(ServingConfig.from_env(reload_seconds=0))
stats, warm, ready = svc.cache.stats(), svc.warm.last, svc.ready()
before = set(sys.modules)
first = svc.embed(warm.user, scenario=sys.argv[1])
print(json.dumps({"ready": ready, "user": warm.user, "known": warm.known, "column": warm.column,
                  "cache": stats, "imported": sorted(set(sys.modules) - before),
                  "feast_before": "feast" in before, "cached": first.prefix_cached}))
"""


def test_a_fresh_service_is_warm_when_ready(serving_env: dict[str, str], store) -> None:
    env = {**os.environ, **serving_env, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", FRESH, SCENARIOS[0]], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    first = str(pd.read_parquet(Path(store.data) / "users.parquet")["user_id"].iloc[0])
    assert got["ready"] and got["user"] == first and got["known"]
    assert got["column"] == SCENARIOS[0]
    # Feast, scikit-learn (the bag's TF-IDF) and every other lazy import came with the warm-up.
    assert got["feast_before"] and got["imported"] == []
    # The warm-up left no prefix and no count in the served cache.
    assert got["cache"]["entries"] == got["cache"]["misses"] == 0 and not got["cached"]


def test_a_user_the_store_does_not_know_warms_the_model_on_a_synthetic_one(
    serving_vars, store: FeatureStoreConfig
) -> None:
    svc = EmbeddingService(ServingConfig.from_env(reload_seconds=0))
    warmed = warm_up(svc.model, store, user="nobody-at-all")
    assert warmed.user == "nobody-at-all" and not warmed.known
    assert svc.cache.stats()["misses"] == 0


def test_a_store_it_cannot_read_keeps_it_unready_until_a_retry_reads_it(
    serving_vars, tuned_model: Path, served_tag: str, users: list[str], tmp_path: Path
) -> None:
    # The same build, but a store directory nothing was applied to: no feature service.
    cfg = ServingConfig.from_env(
        reload_seconds=0, warm_retry_seconds=0, **{"features.work_dir": str(tmp_path / "fs")}
    )
    svc = EmbeddingService(cfg)
    assert not svc.ready() and svc.warm.last is None
    assert "warm-up failed" in svc.refusal and "not registered" in svc.refusal
    with pytest.raises(NotServing, match="warm-up failed"):
        svc.embed(users[0], SCENARIOS[0])
    # A promoted model is not swapped in while its warm-up cannot read the store either.
    other = shutil.copytree(tuned_model, tmp_path / "model")
    (other / "NOTE").write_text("another version")
    assert not svc.reload(registry.register(other)) and svc.model.version == served_tag
    sync(cfg.features)  # the store comes up: a readiness probe's retry finds it
    for _ in range(1200):
        if svc.ready():
            break
        time.sleep(0.1)
    assert svc.ready() and svc.warm.last.known
    assert svc.embed(users[0], SCENARIOS[0]).model_version == served_tag


def test_a_swapped_in_model_was_warmed_up_first(
    serving_vars, tuned_model: Path, served_tag: str, users: list[str], tmp_path: Path
) -> None:
    svc = EmbeddingService(ServingConfig.from_env(reload_seconds=0))
    assert svc.warm.last.version == served_tag
    other = shutil.copytree(tuned_model, tmp_path / "model")
    (other / "NOTE").write_text("a version to warm up")
    new_tag = registry.register(other)
    assert svc.reload(new_tag) and svc.warm.last.version == new_tag == svc.model.version
    assert svc.cache.stats()["misses"] == 0  # neither warm-up counted in the served cache
    assert svc.embed(users[0], SCENARIOS[0]).model_version == new_tag
