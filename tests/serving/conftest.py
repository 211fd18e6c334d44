"""Fixtures of the serving tests: a tuned tiny model promoted in a temporary BentoML store, a
Feast store over a copy of the tiny build, and the service's ASGI app under a test client.

``import feast`` and the tiny tuning take seconds, so they are built once per session.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.features import FeatureStoreConfig, sync

REPO = Path(__file__).resolve().parents[2]
KEY = "test-key-0123456789abcdef"
SCENARIOS = ["cash_loan_default", "churn_next_month"]
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The BentoML home the tests register in (a temp dir, unless this process chose one)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml")))
    mp.setenv("BENTOML_DO_NOT_TRACK", "True")
    from qanchor import registry

    # BentoML fixes its home once per process: children must use the same one.
    yield registry.bentoml_home()
    mp.undo()


@pytest.fixture(scope="session")
def tuned_model(tiny_model: Path, built_tiny: Path, tmp_path_factory) -> Path:
    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    model = tmp_path_factory.mktemp("served") / "model"
    shutil.copytree(tiny_model, model)
    tune_model(
        model, built_tiny, resolve(TuneConfig, "tiny", overrides={"share": "none"}), SCENARIOS
    )
    return model


@pytest.fixture(scope="session")
def served_tag(serving_home: Path, tuned_model: Path) -> str:
    """The tuned model registered and promoted as ``qanchor``."""
    from qanchor import registry

    tag = registry.register(tuned_model, labels={"run": "serving-tests"})
    registry.promote(tag, "serving tests")
    return tag


@pytest.fixture(scope="session")
def store(built_tiny: Path, tmp_path_factory) -> FeatureStoreConfig:
    """A Feast store (SQLite) over a private copy of the tiny build, applied and materialised."""
    root = tmp_path_factory.mktemp("serving-store")
    data = shutil.copytree(
        built_tiny, root / "built", ignore=shutil.ignore_patterns("feature_store")
    )
    repo = shutil.copytree(REPO / "feature_repo", root / "feature_repo")
    cfg = FeatureStoreConfig(data=str(data), repo=str(repo))
    sync(cfg)
    return cfg


@pytest.fixture(scope="session")
def users(built_tiny: Path) -> list[str]:
    return pd.read_parquet(built_tiny / "snapshots.parquet")["user_id"].astype(str).tolist()


@pytest.fixture(scope="session")
def serving_env(store: FeatureStoreConfig, served_tag: str, serving_home: Path) -> dict[str, str]:
    """The deployment variables of a service over the test store and model store."""
    return {
        "QANCHOR_FEATURE_DATA": store.data,
        "QANCHOR_FEATURE_REPO": store.repo,
        "QANCHOR_API_KEY": KEY,
        "QANCHOR_CACHE_BYTES": str(64 << 20),
        "QANCHOR_RELOAD_SECONDS": "0.01",
        "BENTOML_HOME": str(serving_home),
    }


@pytest.fixture
def serving_vars(serving_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment variables, set in this test's environment (``ServingConfig.from_env``)."""
    for k, v in serving_env.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="session")
def service_cls(serving_env: dict[str, str]) -> Iterator[type]:
    """``services.service.QAnchor``, imported with the serving variables set."""
    mp = pytest.MonkeyPatch()
    for k, v in serving_env.items():
        mp.setenv(k, v)
    mp.syspath_prepend(str(REPO))
    module = importlib.import_module("services.service")
    yield module.QAnchor
    mp.undo()
    sys.modules.pop("services.service", None)


@pytest.fixture(scope="session")
def client(service_cls: type) -> Iterator:
    """A test client of the service's ASGI app (its lifespan loads the model)."""
    from starlette.testclient import TestClient

    with TestClient(service_cls.to_asgi(), raise_server_exceptions=False) as c:
        yield c
