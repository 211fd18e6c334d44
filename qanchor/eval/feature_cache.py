"""Baseline features cached on disk by the build's content hash, reused by later evaluations.

A baseline's features depend only on the built data and the baseline's own settings, not on the
model being evaluated, yet ``llm_untrained`` (an LLM pass per user and scenario) costs minutes.
Evaluating another model on the same build (a re-run, an ablation, a seed) reads them back.
The key is the build manifest's ``content_hash`` plus every setting that shapes the features
(and the evaluated users), so a changed build or setting is a miss, never a stale hit. Entries
live under ``$QANCHOR_CACHE/baseline_features/<name>/<key>/``, one parquet file per frame.

Example::

    feats, hit = cached(manifest, "llm_untrained", {"budget": 69}, lambda: compute())
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

Frames = pd.DataFrame | dict[str, pd.DataFrame]
SINGLE = "features"  # file stem of a baseline with one frame for every scenario


def entry_dir(manifest: dict, name: str, params: dict) -> Path | None:
    """Where ``name``'s features for this build and settings are kept (None: not cacheable,
    the build records no content hash)."""
    from qanchor.model.backbones import cache_root

    data = manifest.get("content_hash")
    if not data:
        return None
    text = json.dumps({"data": data, "name": name, "params": params}, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    return cache_root() / "baseline_features" / name / key


def cached(
    manifest: dict, name: str, params: dict, compute: Callable[[], Frames], enabled: bool = True
) -> tuple[Frames, bool]:
    """``compute()``'s frames, read from the cache when this build and ``params`` were seen.

    Returns:
        ``(frames, hit)``: the features (one frame, or scenario -> frame) and whether they
        came from the cache.
    """
    where = entry_dir(manifest, name, params) if enabled else None
    if where is not None and (where / "done").is_file():
        log.info("%s: features from the cache (%s)", name, where)
        return _read(where), True
    frames = compute()
    if where is not None:
        _write(where, frames)
    return frames, False


def _write(where: Path, frames: Frames) -> None:
    from qanchor.io import atomic_dir

    parts = {SINGLE: frames} if isinstance(frames, pd.DataFrame) else frames
    where.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(where) as tmp:
        for stem, frame in parts.items():
            # Parquet wants string column names; the probes read values, not names.
            frame.set_axis([str(c) for c in frame.columns], axis=1).to_parquet(
                tmp / f"{stem}.parquet"
            )
        (tmp / "scenarios.json").write_text(json.dumps(list(parts)))
        (tmp / "done").write_text("")


def _read(where: Path) -> Frames:
    stems = json.loads((where / "scenarios.json").read_text())
    frames = {stem: pd.read_parquet(where / f"{stem}.parquet") for stem in stems}
    return frames[SINGLE] if stems == [SINGLE] else frames
