"""Batch refresh: embed all users x all scenarios into parquet shards, fully or incrementally.

    qanchor embed --model runs/model --data data/built --out runs/embeddings [--incremental]

Each shard holds rows (user_id, scenario, feature_version, model_version, embedding), the schema
of :mod:`qanchor.infer.shards`.
``state.parquet`` records every user's feature version and shard, ``summary.json`` the model
identity and scenario list; an incremental run re-encodes only users whose inputs changed (new
events, new profile) or who are new, and rewrites only the shards they touch, the way the paper
refreshes hundreds of millions of users daily. A new model identity (retrained, re-tuned, a new
adapter) or another scenario list makes every stored vector stale: the run re-embeds everyone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.infer.engine import Embedder
from qanchor.infer.shards import write_embeddings
from qanchor.io import atomic_dir
from qanchor.progress import bar as progress

# Users per embed call between progress updates: a multiple of embed_rows' 64-user block, so the
# blocks (and their left padding) are those of one call over all users and the vectors identical.
CHUNK_USERS = 256


def refresh(
    emb: Embedder, out_dir: str | Path, scenarios: list[str], shard_users: int = 1000,
    incremental: bool = False, tuned: bool = True,
) -> dict:  # fmt: skip
    """Embed the embedder's users into ``out_dir``; returns a summary (users embedded, seconds)."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    users = emb.table.user_ids
    versions = emb.feature_versions()
    same = incremental and _same_model(out_dir, emb, scenarios, tuned)
    prev = _read_state(out_dir) if same else None
    changed = [u for u in users if prev is None or prev.get(u, (None, None))[0] != versions[u]]
    order = sorted(users)
    shard_of = {u: i // shard_users for i, u in enumerate(order)}
    touched = sorted({shard_of[u] for u in changed})
    new = _embed_with_progress(emb, changed, scenarios, tuned)
    with atomic_dir(out_dir) as tmp:
        for k in sorted(set(shard_of.values())):
            name = f"shard-{k:05d}.parquet"
            if k in touched or prev is None:
                members = [u for u in order if shard_of[u] == k]
                _write_shard(tmp / name, members, scenarios, versions, new, out_dir / name,
                             emb.model_version)  # fmt: skip
            else:  # untouched shard: carried over byte for byte
                (tmp / name).write_bytes((out_dir / name).read_bytes())
        state = pd.DataFrame({"user_id": order, "feature_version": [versions[u] for u in order],
                              "shard": [shard_of[u] for u in order]})  # fmt: skip
        state.to_parquet(tmp / "state.parquet", index=False)
        summary = {"users": len(users), "embedded": len(changed), "shards_rewritten": len(touched) if prev else len(set(shard_of.values())),
                   "scenarios": scenarios, "model_version": emb.model_version, "tuned": tuned,
                   "full": prev is None, "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _embed_with_progress(
    emb: Embedder, users: list[str], scenarios: list[str], tuned: bool
) -> dict[str, np.ndarray]:
    """Each user's [scenarios, d] vectors, :data:`CHUNK_USERS` users at a time behind a bar."""
    out: dict[str, np.ndarray] = {}
    with progress(total=len(users), desc="embed", unit="user") as bar:
        for k in range(0, len(users), CHUNK_USERS):
            part = users[k : k + CHUNK_USERS]
            out.update(zip(part, emb.embed(part, scenarios, tuned=tuned), strict=True))
            bar.update(len(part))
    return out


def _same_model(out_dir: Path, emb: Embedder, scenarios: list[str], tuned: bool) -> bool:
    """Whether the stored vectors come from this model identity, scenario list and prompts."""
    path = out_dir / "summary.json"
    if not path.is_file():
        return False
    done = json.loads(path.read_text())
    want = {"model_version": emb.model_version, "scenarios": scenarios, "tuned": tuned}
    return {k: done.get(k) for k in want} == want


def _read_state(out_dir: Path) -> dict[str, tuple[str, int]] | None:
    path = out_dir / "state.parquet"
    if not path.is_file():
        return None
    st = pd.read_parquet(path)
    return {
        u: (v, s) for u, v, s in zip(st["user_id"], st["feature_version"], st["shard"], strict=True)
    }


def _write_shard(
    path: Path, members: list[str], scenarios: list[str], versions: dict, new: dict,
    old_path: Path, model_version: str,
) -> None:  # fmt: skip
    """Rows of one shard: fresh vectors for changed users, previous rows for the others."""
    old = pd.read_parquet(old_path) if old_path.is_file() else None
    keep = (
        old[~old["user_id"].isin(new.keys()) & old["user_id"].isin(members)]
        if old is not None
        else None
    )
    fresh = [u for u in members if u in new]
    write_embeddings(path, fresh, scenarios, [new[u] for u in fresh], versions, model_version, keep)
