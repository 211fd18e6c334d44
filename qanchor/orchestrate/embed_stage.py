"""The pipeline's embed stage: every user x tuned scenario, sharded over processes, streamed.

A shard reads, embeds and writes its users one block at a time (:data:`LOAD_BLOCK`), so its
memory is one block's inputs and vectors whatever the number of users (at 20,000 users the
stage that held a whole shard's inputs and vectors, as Python floats, peaked at 11 GB for the
pipeline and its two shard processes together).

    embed_all("runs/r1")              # one one-thread share per core (here + spawned)
    embed_shard("runs/r1", 0, 2)      # the first of two shards, in this process
"""

from __future__ import annotations

from pathlib import Path

from qanchor.errors import QAnchorError
from qanchor.infer.threads import cores, torch_threads
from qanchor.io import atomic_file
from qanchor.orchestrate.rundir import RunPaths, record

LOAD_BLOCK = 1024  # users whose inputs are built at once (texts encoded in one pass)
EMBED_BLOCK = 256  # users per embedding call under the progress bar


def embed_shard(
    run: str | Path, shard: int, num_shards: int, scenarios: list[str] | None = None,
    block: int = LOAD_BLOCK, reuse: bool = True,
) -> dict:  # fmt: skip
    """Embed every ``num_shards``-th user (offset ``shard``) x the tuned scenarios into one file.

    Users whose vectors this run's evaluation already computed (same model, same features, same
    precision: ``eval/embeddings-fp32.parquet``) are copied from there, not embedded again; on a
    build no larger than evaluation's ``max_users`` that is every user. ``reuse=False`` embeds
    every user afresh (the same vectors: for measuring the embedding rate). ``block`` users are
    loaded at a time (the result does not depend on it).
    """
    import pandas as pd

    from qanchor.infer.engine import Embedder, embed_rows_split
    from qanchor.infer.shards import EmbeddingWriter, reusable, vectors_file
    from qanchor.progress import bar

    if not 0 <= shard < num_shards:
        raise QAnchorError(f"shard {shard} is not in [0, {num_shards})")
    p = RunPaths(Path(run))
    snapshots = p.built / "snapshots.parquet"
    users = sorted(pd.read_parquet(snapshots, columns=["user_id"])["user_id"])[shard::num_shards]
    path = p.embeddings / f"shard-{shard:05d}-of-{num_shards:05d}.parquet"
    names = copy_evaluated(p, users, scenarios, path, block) if reuse else None
    if names is not None:
        return record(p, f"embed-{shard}", {"path": str(path), "users": len(users),
                                            "scenarios": names, "reused": len(users)})  # fmt: skip
    emb = Embedder.from_dir(p.model)
    names = list(scenarios or sorted(emb.adapters))
    suffixes = [emb.suffix(s) for s in names]
    earlier = p.eval / vectors_file(emb.engine.bf16)
    reused = 0
    with atomic_file(path) as tmp, bar(desc=f"embed shard {shard + 1}/{num_shards}",
                                       total=len(users), unit="user") as shown:  # fmt: skip
        out = EmbeddingWriter(tmp, emb.model_version)
        for b in range(0, len(users), block):
            ids = users[b : b + block]
            emb.load_users(*_rows(p.built, ids))
            versions = emb.feature_versions()
            done = reusable(earlier, ids, names, versions, emb.model_version) if reuse else {}
            reused += len(done)
            shown.update(len(done))
            todo = [u for u in ids if u not in done]
            for k in range(0, len(todo), EMBED_BLOCK):
                part = todo[k : k + EMBED_BLOCK]
                # No prefix cache: each user is embedded once, every scenario in one call.
                vecs = embed_rows_split(emb, emb.rows(part), suffixes, use_cache=False)
                done.update(zip(part, vecs, strict=True))
                shown.update(len(part))
            out.write(ids, names, [done[u] for u in ids], versions)
        out.close()
    return record(p, f"embed-{shard}", {"path": str(path), "users": len(users), "scenarios": names,
                                        "reused": reused})  # fmt: skip


class _NotCovered(Exception):
    """Evaluation's file lacks a vector the shard needs: the shard embeds."""


def copy_evaluated(
    p: RunPaths, users: list[str], scenarios: list[str] | None, path: Path, block: int
) -> list[str] | None:
    """Write the shard from evaluation's vectors without loading the model, when they hold
    every one of its users (a build no larger than evaluation's ``max_users``); returns the
    scenarios written, or None when the shard must embed (nothing is written then).

    The check is :func:`~qanchor.infer.shards.reusable`'s (same model, same features, every
    scenario); the feature versions come from the model's config, featurizer and bag
    vectorizer alone (:func:`~qanchor.model.artifact.load_inputs`). Loading the model (the
    backbone, the encoder, transformers and peft) and encoding the users' texts to copy vectors
    it never used kept a 2,000-user shard of ``make run`` at ~17 s; without them ~7 s.
    """
    import pandas as pd

    from qanchor.infer.shards import EmbeddingWriter, reusable, vectors_file
    from qanchor.infer.users import input_versions, user_table
    from qanchor.model.artifact import load_inputs
    from qanchor.model.identity import model_id
    from qanchor.tune.adapters import load_adapters

    # Embedder.from_dir's precision, which the embedding path below runs in.
    earlier = p.eval / vectors_file(False)
    if not earlier.is_file():
        return None
    version = model_id(p.model)
    held = pd.read_parquet(earlier, columns=["user_id"], filters=[("model_version", "==", version)])
    if not set(users) <= set(held["user_id"]):
        return None
    names = list(scenarios or sorted(a.name for a in load_adapters(p.model)))
    cfg, featurizer, bag = load_inputs(p.model)
    try:
        with atomic_file(path) as tmp:
            out = EmbeddingWriter(tmp, version)
            for b in range(0, len(users), block):
                ids = users[b : b + block]
                table = user_table(cfg, featurizer, bag, *_rows(p.built, ids))
                versions = dict(zip(table.user_ids, input_versions(table), strict=True))
                done = reusable(earlier, ids, names, versions, version)
                if len(done) < len(ids):
                    raise _NotCovered
                out.write(ids, names, [done[u] for u in ids], versions)
            out.close()
    except _NotCovered:
        return None
    return names


def _rows(built: Path, ids: list[str]):  # noqa: ANN202 - (snapshot rows, tabular frame)
    """Only ``ids``' snapshot, profile and aggregate rows (their row groups, not whole files:
    at 100,000 users the whole tabular frame was ~180 MB per worker)."""
    from qanchor.data.user_rows import read_user_rows
    from qanchor.model.profile import built_tables, tabular_frame

    tabular = tabular_frame(*built_tables(built, ids))
    return read_user_rows(built / "snapshots.parquet", ids), tabular


def embed_all(
    run: str | Path, workers: int | None = None, reuse: bool = True,
    num_shards: int | None = None, only: list[int] | None = None,
) -> list[dict]:  # fmt: skip
    """Every user x tuned scenario, in ``workers`` one-thread shares, one shard each by default.

    Default: one share per core this process may run on (:func:`cores`). This process embeds
    one share itself and spawned processes the others, so the stage starts one process fewer
    (its imports, ~0.4 GB, and their start-up). ``qanchor run`` calls it from a process that
    ran no earlier stage (:func:`qanchor.pipeline.run_all`): one that had run them through
    register at 100,000 users held 1.4 GB of native memory no Python object referenced, and the
    stage sampled on 2 of 40 shards peaked at 4.4 GB, that process and its worker together.

    ``num_shards`` splits the users finer (shares take shards in turn); ``only`` runs just
    those shards (a benchmark's sample of the stage). Results come in shard order. Measured on
    2 cores (fp32, small model, 2,000 users): two one-thread processes embedded 7.9 users/s
    together, one two-thread process 6.4 (the suffix passes are too small to keep two threads
    busy). Each process holds its own model copy.
    """
    n = workers or cores()
    k = num_shards or n
    todo = list(range(k) if only is None else only)
    if n == 1 or len(todo) == 1:
        return [embed_shard(run, s, k, reuse=reuse) for s in todo]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    mine, theirs = todo[::n], [s for i, s in enumerate(todo) if i % n]
    shard = partial(embed_shard, run, num_shards=k, reuse=reuse)
    # spawn, not fork: a forked child would inherit this process's torch thread pools.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n - 1, mp_context=ctx, initializer=_one_thread) as pool:
        spawned = pool.map(shard, theirs)
        with torch_threads(1):
            done = {s: shard(s) for s in mine}
        done.update(zip(theirs, spawned, strict=True))
    return [done[s] for s in todo]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
