"""Fixtures of the orchestration tests: private BentoML and Airflow homes, a raw tiny dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qanchor.data.synth import SynthConfig, synth

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
TWO_SCENARIOS = ["cash_loan_default", "churn_next_month"]


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Airflow settings for in-process parsing (Airflow reads them when first imported)."""
    path = tmp_path_factory.mktemp("airflow")
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_HOME", str(path))
    mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def raw_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 synthetic users in the input contract (not built)."""
    return synth(SynthConfig(users=80, seed=1), tmp_path_factory.mktemp("raw") / "raw")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process (the session's homes and caches are inherited)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
