"""A stage killed mid-write (SIGKILL) and retried leaves consistent artifacts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from components.runner import run_stage
from qanchor.data.synth import SynthConfig, synth
from qanchor.io import sha256_file, sha256_tree
from qanchor.orchestrate.rundir import RunPaths, read_result

from .conftest import child_env

STAGE = "from components.runner import run_stage; import sys; run_stage('build', sys.argv[1], dataset=sys.argv[2], preset='tiny', scenarios=[])"


def leftovers(p: RunPaths) -> list[Path]:
    return [q for q in p.root.iterdir() if q.name.startswith(".built.")]


def kill_mid_write(p: RunPaths, dataset: Path) -> None:
    """Start the build component in its own process group; SIGKILL it once output files appear."""
    proc = subprocess.Popen([sys.executable, "-c", STAGE, str(p.root), str(dataset)], env=child_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(any(d.iterdir()) for d in leftovers(p) if d.is_dir()):
                os.killpg(proc.pid, signal.SIGKILL)  # the runner and the component's process
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        "the stage finished before it could be killed mid-write"
    )


def test_killed_build_keeps_last_good_output_and_retry_completes(
    raw_tiny: Path, tmp_path: Path
) -> None:
    p = RunPaths(tmp_path / "run")
    good = run_stage("build", p.root, dataset=str(raw_tiny), preset="tiny", scenarios=[])
    good_tree = sha256_tree(p.built)
    bigger = synth(SynthConfig(users=1500, seed=3), tmp_path / "bigger")  # slow enough to catch

    kill_mid_write(p, bigger)
    assert leftovers(p), "a killed writer leaves its temporary directory behind"
    assert sha256_tree(p.built) == good_tree  # the last good artifact is untouched
    assert read_result(p.root, "build") == good  # and so is its recorded result

    retried = run_stage("build", p.root, dataset=str(bigger), preset="tiny", scenarios=[])
    manifest = json.loads((p.built / "manifest.json").read_text())
    assert retried["content_hash"] == manifest["content_hash"] != good["content_hash"]
    assert manifest["rows"]["users.parquet"] == 1500
    for name, digest in manifest[
        "files"
    ].items():  # complete: every file the manifest lists, intact
        assert sha256_file(p.built / name) == digest, name
    assert leftovers(p) == []  # the retry removed the dead writer's leftovers
