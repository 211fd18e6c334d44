"""Atomic output directories: a failing writer never damages the last good artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from qanchor.io import atomic_dir, atomic_file, atomic_write_text, recover


def test_success_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_keeps_the_previous_output_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("good")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (target / "a.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def dead_pid() -> int:
    """The pid of a process that has exited (so no live writer owns it)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    import os
    import socket

    host = socket.gethostname()
    dead = tmp_path / f".out.tmp-{dead_pid()}@{host}-0123abcd"
    live = tmp_path / f".out.tmp-{os.getpid()}@{host}-89abcdef"
    for d in (dead, live):
        d.mkdir()
        (d / "half.txt").write_text("half")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("new")
    assert not dead.exists() and live.exists()
    assert (tmp_path / "out" / "a.txt").read_text() == "new"


def test_output_lost_between_the_two_renames_is_restored(tmp_path: Path) -> None:
    import socket

    old = tmp_path / f".out.old-{dead_pid()}@{socket.gethostname()}-0123abcd"
    old.mkdir()
    (old / "a.txt").write_text("last good")
    recover(tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "last good" and not old.exists()


def test_atomic_file_replaces_or_keeps(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "r.json", "one")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    with atomic_file(target) as tmp:
        tmp.write_text("two")
    assert target.read_text() == "two"
