"""The run directory: where each stage of one run reads, writes and records its result.

Every stage of a run (``qanchor.orchestrate.stages``) works under one directory that all steps
see (shared storage on a cluster); its name comes from the orchestrator's run id.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qanchor.errors import QAnchorError
from qanchor.io import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    """Where each stage of one run reads and writes."""

    root: Path

    @property
    def built(self) -> Path:
        return self.root / "built"

    @property
    def features(self) -> Path:
        return self.built / "feature_store"  # qanchor.features keeps its state beside the data

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def guard_vectors(self) -> Path:
        return self.root / "guard_vectors"  # tuning's guard vectors, reused by evaluation

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    def result(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"


def workdir() -> Path:
    """Where runs go: ``QANCHOR_WORKDIR`` (shared storage in production), else beside Airflow."""
    from qanchor.orchestrate.settings import RunSettings

    return RunSettings().root()


def run_dir(workdir: str | Path, run_id: str) -> Path:
    """The run directory of an orchestrator run id (made safe as one path component)."""
    return Path(workdir) / re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_")


def feature_repo() -> str:
    """The Feast repo to read user snapshots through (``QANCHOR_FEATURE_REPO``), or "" for none."""
    from qanchor.env import read_env
    from qanchor.runtime_config import RuntimeConfig

    path = read_env(RuntimeConfig, {"QANCHOR_FEATURE_REPO": "feature_repo"}).get("feature_repo")
    return str(Path(path).expanduser().resolve()) if path else ""


def run_for(run_id: str) -> str:
    """The run directory of an Airflow run id under :func:`workdir`."""
    return str(run_dir(workdir(), run_id))


def read_result(run: str | Path, stage: str) -> dict[str, Any]:
    """The recorded result of a finished stage (clear error if it did not run)."""
    path = RunPaths(Path(run)).result(stage)
    if not path.is_file():
        raise QAnchorError(f"stage {stage!r} has no result in {run} (did it run?)")
    return json.loads(path.read_text())


def record(paths: RunPaths, stage: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write a stage's result to ``<run>/stages/<stage>.json`` (atomically) and return it."""
    atomic_write_json(paths.result(stage), result)
    log.info("stage %s: %s", stage, result)
    return result
