"""``bentoml build`` packages the service from bentofile.yaml (offline; no image is built)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO


def test_bentoml_build_packages_the_service(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "True"}
    cmd = [sys.executable, "-m", "bentoml", "build", "--output", "tag"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (bento,) = (tmp_path / "bentos" / "qanchor").glob("*/bento.yaml")
    info = yaml.safe_load(bento.read_text())
    assert info["service"] == "services.service:QAnchor" and info["name"] == "qanchor"
    routes = {r["route"] for r in info["schema"]["routes"]}
    assert {"/embed", "/embed_batch", "/explain", "/scenarios"} <= routes
    src = bento.parent / "src"
    for path in ("services/service.py", "qanchor/serving/service.py", "feature_repo/definitions.py",
                 "feature_repo/feature_store.yaml", "requirements-models.txt"):  # fmt: skip
        assert (src / path).is_file(), path
    assert not list(src.rglob("__pycache__"))
    reqs = (bento.parent / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0+cpu" in reqs and "bentoml==1.4.39" in reqs
