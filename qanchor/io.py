"""Atomic, idempotent output: a stage writes into a temporary sibling and renames it into place.

A reader (or a retried task) therefore sees either the previous complete artifact or the new
complete one, never a half-written directory. A writer killed outright (SIGKILL, OOM, a lost
node) cannot clean up after itself: its leftovers carry its host and pid in their names, and the
next writer of the same target removes them (or, if it died between the two renames of the swap,
puts the last good output back) before it starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _tag() -> str:
    """Host, pid and a random part: unique per writer and tells whether the writer is alive."""
    return f"{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a killed writer whose parent died too may linger unreaped: a zombie writes nothing
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no procfs: trust the signal check
    return state not in ("Z", "X")


def recover(target: str | Path) -> None:
    """Remove leftovers of dead writers of ``target`` on this host; restore a lost swap.

    Leftovers of writers on other hosts (a shared volume) are left alone: their pids mean
    nothing here.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)@(.+)-[0-9a-f]{{8}}$")
    host = socket.gethostname()
    for p in sorted(target.parent.iterdir()):
        m = pattern.match(p.name)
        if not m or m.group(3) != host or _alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and not target.exists():
            os.replace(p, target)  # killed between the two renames: the old output is the good one
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = target.parent / f".{target.name}.tmp-{_tag()}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        # Two renames, not rmtree-then-rename: the last good output survives a crash in between.
        old = target.parent / f".{target.name}.old-{_tag()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes ``target`` (one rename) if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = target.parent / f".{target.name}.tmp-{_tag()}"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename must not publish a file whose bytes are not on disk yet
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write a text file atomically (readers never see half of it)."""
    with atomic_file(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def atomic_write_json(target: str | Path, obj: Any) -> Path:
    """``atomic_write_text`` of indented JSON."""
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(root: str | Path, skip: tuple[str, ...] = ()) -> str:
    """Hex SHA-256 over a directory's relative file paths and contents (order-independent),
    leaving out the top-level entries named in ``skip``."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root)
        if rel.parts[0] not in skip:
            h.update(rel.as_posix().encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()
