"""Fixtures for model tests: a small built synthetic dataset and an isolated model cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.data.synth import SynthConfig, synth


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Event-vector and backbone caches go to a temp dir, never the user's cache."""
    path = tmp_path_factory.mktemp("qanchor-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("QANCHOR_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def built_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 synthetic users, built with the tiny preset (a few seconds)."""
    root = tmp_path_factory.mktemp("tinydata")
    raw = synth(SynthConfig(users=80, seed=1), root / "raw")
    return build_dataset(raw, root / "built", resolve(BuildConfig, "tiny"))
