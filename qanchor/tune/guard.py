"""Tuning's validation guard: keep a tuned prompt only if it helps on val users; judge bag heads.

A linear probe fitted on training users' embeddings must score validation users better (ROC
AUC) with the prompt than with the untuned query; the bag head's verdict (with vs without it,
:func:`qanchor.tune.heads.judge_head`) is recorded and enforced only with ``bag_head_guard``;
see :mod:`qanchor.tune.prompt`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.data.contract import Scenario
from qanchor.infer import pair_store
from qanchor.infer.engine import Embedder, Suffix, embed_rows_shown
from qanchor.tune.adapters import ScenarioAdapter
from qanchor.tune.config import TuneConfig
from qanchor.tune.heads import judge_head, val_auc
from qanchor.tune.prototypes import class_pools, init_prototypes

log = logging.getLogger(__name__)


def keeper(model_dir, emb: Embedder, path: Path) -> Callable:
    """The guard's ``on_vectors``: write its vectors to ``path`` under this model's key."""
    key = pair_store.model_key(model_dir, emb.engine.bf16)

    def keep(ids: list[str], suffixes: list[Suffix], vecs: np.ndarray) -> None:
        pair_store.write_pairs(path, ids, suffixes, vecs, emb.feature_versions(), key)

    return keep


def guard(
    emb: Embedder, adapters: list[ScenarioAdapter], train: pd.DataFrame, val: pd.DataFrame,
    cfg: TuneConfig, on_vectors: Callable | None = None,
) -> list[ScenarioAdapter]:  # fmt: skip
    """Each adapter, or (if its prompt does not beat the untuned query on validation users) the
    same scenario with an empty prompt and prototypes re-fitted under the bare query.

    All adapters are judged in one pass: each user's prefix once, all (tuned, bare) suffixes on it
    (a pass per scenario recomputed evicted prefixes and took longer than the tuning itself).
    The verdict and both AUCs are recorded in each adapter's meta (``val_guard``). At most
    ``cfg.guard_users`` users of each split are embedded if set (a seeded sample, the same for
    every scenario), so the guard can cost the same on 2,000 or 100,000 users.
    ``on_vectors(users, suffixes, vectors)`` receives the pass's vectors (to keep them).
    """
    known = set(emb.user_ids)
    keep = {split: sample_users(frame, known, cfg.guard_users, cfg.runtime.seed)
            for split, frame in (("train", train), ("val", val))}  # fmt: skip
    parts = {}
    for a in adapters:
        tr = train[(train["scenario"] == a.name) & train["user_id"].isin(keep["train"])]
        va = val[(val["scenario"] == a.name) & val["user_id"].isin(keep["val"])]
        if tr["label"].nunique() < 2 or va["label"].nunique() < 2:
            a.meta["val_guard"] = {"kept": True, "reason": "a split lacks a class"}
        else:
            parts[a.name] = (tr, va)
    judged = [a for a in adapters if a.name in parts]
    if not judged:
        return adapters
    ids = sorted({u for tr, va in parts.values() for u in (*tr["user_id"], *va["user_id"])})
    at = {u: i for i, u in enumerate(ids)}
    # Raw vectors (no bag head): the stored pairs stay the model's own, heads apply on top.
    suffixes = [sfx for a in judged for sfx in (Suffix(a.query, a.prompt), Suffix(a.query))]
    # [users, 2 * adapters, d]; behind a bar: 3,000 users x 24 suffixes at 20,000 users
    vecs = embed_rows_shown(emb, emb.rows(ids), suffixes, "tune guard")
    if on_vectors is not None:
        on_vectors(ids, suffixes, vecs)
    head_inputs = [emb.table.inputs[r].head_input() for r in emb.rows(ids)]
    out = {}
    for j, a in enumerate(judged):
        tr, va = parts[a.name]
        rows_tr, rows_va = [at[u] for u in tr["user_id"]], [at[u] for u in va["user_id"]]
        split = (rows_tr, tr), (rows_va, va)
        aucs = {name: val_auc(vecs[:, 2 * j + k], *split, cfg.runtime.seed)
                for k, name in enumerate(("tuned", "base"))}  # fmt: skip
        kept = aucs["tuned"] > aucs["base"]
        a.meta["val_guard"] = {"kept": kept, "val_auc": aucs,
                               "users": {"train": len(rows_tr), "val": len(rows_va)}}  # fmt: skip
        chosen = a
        if not kept:
            log.info("%s: the tuned prompt does not beat the query on val users %s", a.name, aucs)
            chosen = _bare(emb, a, tr, cfg)
        if chosen.head is not None:
            x = vecs[:, 2 * j + (0 if kept else 1)]
            judge_head(chosen, x, ids, head_inputs, *split, cfg.runtime.seed, cfg.bag_head_guard)
        out[a.name] = chosen
    return [out.get(a.name, a) for a in adapters]


def _bare(
    emb: Embedder, a: ScenarioAdapter, train: pd.DataFrame, cfg: TuneConfig
) -> ScenarioAdapter:
    """The scenario with an empty prompt and prototypes re-fitted under its bare query."""
    empty = a.prompt[:0].clone()
    rng = np.random.default_rng(cfg.runtime.seed)
    protos = init_prototypes(
        emb, Scenario(a.name, a.query), empty, class_pools(emb, train), rng, cfg
    )
    return ScenarioAdapter(a.name, a.query, empty, protos, a.meta, a.head)


def sample_users(labels: pd.DataFrame, known: set[str], n: int, seed: int) -> set[str]:
    """At most ``n`` (0: all) of the labelled users that are loaded, a seeded sample
    (:func:`qanchor.eval.probe.ranked`: inside evaluation's sample, which reuses its vectors)."""
    from qanchor.eval.probe import ranked

    users = set(labels["user_id"]) & known
    return users if not n or len(users) <= n else set(ranked(users, seed)[:n])
