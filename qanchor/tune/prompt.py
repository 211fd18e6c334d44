"""Scenario soft-prompt tuning: learn P prompt tokens in the query suffix and K class prototypes.

Run it with::

    qanchor tune --model runs/model --data data/built --preset small [--scenarios a,b]

The backbone, encoder and head stay frozen. Prompts sit after the user prefix, so users' prefix
KV states come from the shared cache (computed once, without gradients) and only the short
suffix is run forward and backward: tuning a scenario costs a fraction of pretraining. Loss:
softmax over cosine similarities of u to the K prototypes (K=2 for a binary label).

With ``TuneConfig.val_guard`` (:mod:`qanchor.tune.guard`) a tuned prompt is kept only if it
helps: a linear probe fitted on training users' embeddings must score validation users better
(ROC AUC) with the prompt than with the untuned query. On MovieLens-100k (small preset) tuning
lowered the mean probe AUC by 0.003-0.008 for every step count and learning rate tried, while on
other data it helps; the guard makes the tuned embedding never knowingly worse than the base one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from qanchor.data.contract import Scenario
from qanchor.infer.engine import Embedder, Suffix
from qanchor.infer.threads import map_threads
from qanchor.progress import bar as progress
from qanchor.tune.adapters import ScenarioAdapter
from qanchor.tune.config import TuneConfig
from qanchor.tune.heads import fit_heads
from qanchor.tune.prototypes import balanced, class_pools, init_prototypes

log = logging.getLogger(__name__)


def groups_for(
    scenarios: list[Scenario], positives: dict[str, int], cfg: TuneConfig, encode
) -> list[list[Scenario]]:
    """Which scenarios share a prompt: singletons, query clusters, or clusters of the rare ones."""
    from qanchor.tune.clusters import cluster_scenarios

    if cfg.share == "none":
        return [[s] for s in scenarios]
    pool = (
        scenarios
        if cfg.share == "cluster"
        else [s for s in scenarios if positives.get(s.name, 0) < cfg.min_positives]
    )
    alone = [[s] for s in scenarios if s not in pool]
    if not pool:
        return alone
    ids = cluster_scenarios(
        {s.name: s.query for s in pool}, cfg.n_clusters, encode, cfg.runtime.seed
    )
    clusters: dict[int, list[Scenario]] = {}
    for s in pool:
        clusters.setdefault(ids[s.name], []).append(s)
    return alone + [clusters[k] for k in sorted(clusters)]


def tune_group(
    emb: Embedder, group: list[Scenario], labels: pd.DataFrame, cfg: TuneConfig,
    on_step: Callable[[], object] | None = None,
) -> list[ScenarioAdapter]:  # fmt: skip
    """Tune one prompt shared by ``group`` (one scenario or a cluster) and K=2 prototypes each.

    Args:
        emb: an embedder with the training users loaded.
        group: scenarios that share the prompt.
        labels: training labels (user_id, scenario, label).
        cfg: tuning settings.
        on_step: called after every optimiser step (a progress bar's ``update``).
    """
    rng = np.random.default_rng([cfg.runtime.seed, *[ord(c) for c in group[0].name]])
    pools = {s.name: class_pools(emb, labels[labels["scenario"] == s.name]) for s in group}
    prompt = torch.nn.Parameter(_init_prompt(emb, group[0].query, cfg.n_prompt))
    protos = {
        s.name: torch.nn.Parameter(init_prototypes(emb, s, prompt, pools[s.name], rng, cfg))
        for s in group
    }
    opt = torch.optim.Adam([prompt, *protos.values()], lr=cfg.lr)
    t0, losses = time.perf_counter(), []
    for step in range(cfg.steps):
        s = group[step % len(group)]
        rows, y = balanced(pools[s.name], cfg.batch_size, rng)
        u = emb.suffix_forward(
            emb.prefixes(rows), [emb.suffix_embeds(Suffix(s.query, prompt))] * len(rows)
        )
        logits = u @ F.normalize(protos[s.name], dim=-1).T / cfg.temperature
        loss = F.cross_entropy(logits, torch.as_tensor(y, device=logits.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step()
    meta = {"n_prompt": cfg.n_prompt, "steps": cfg.steps, "shared_with": [s.name for s in group],
            "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "train_users": len({r for p in pools.values() for rows in p.values() for r in rows}),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    return [
        ScenarioAdapter(
            s.name,
            s.query,
            prompt.detach().clone(),
            F.normalize(protos[s.name].detach(), dim=-1),
            meta,
        )
        for s in group
    ]


def _init_prompt(emb: Embedder, query: str, n: int) -> torch.Tensor:
    """Start from the embeddings of the query's own first tokens (a scenario-aware init)."""
    ids = emb.model.layout._encode(" " + query)
    ids = (ids * (n // max(len(ids), 1) + 1))[:n]
    with torch.no_grad():
        return (
            emb.model.causal_lm.get_input_embeddings()(torch.tensor(ids, device=emb.device))
            .clone()
            .float()
        )


def tune_model(
    model_dir, built_dir, cfg: TuneConfig, scenarios: list[str] | None = None,
    guard_vectors: Path | None = None,
) -> list[ScenarioAdapter]:  # fmt: skip
    """Tune every (or the named) scenario of a built dataset; adapters are saved beside the model.
    ``guard_vectors``: a file to keep the guard's vectors in (:mod:`qanchor.infer.pair_store`).
    """
    from qanchor.data.contract import read_scenarios
    from qanchor.errors import QAnchorError
    from qanchor.eval.probe import sample_users
    from qanchor.memory import release_memory
    from qanchor.model.data import require_built
    from qanchor.tune.adapters import save_adapter
    from qanchor.tune.inputs import load_users

    torch.manual_seed(cfg.runtime.seed)
    root = require_built(built_dir)
    defined = read_scenarios(root / "scenarios.yaml")
    unknown = sorted(set(scenarios or []) - {s.name for s in defined})
    if unknown:
        raise QAnchorError(f"unknown scenarios {unknown}; defined: {[s.name for s in defined]}")
    chosen = [s for s in defined if scenarios is None or s.name in scenarios]
    labels = pd.read_parquet(root / "labels.parquet")
    train = labels[labels["split"] == "train"]
    val = labels[labels["split"] == "val"] if cfg.val_guard else labels.iloc[:0]
    emb = Embedder.from_dir(
        model_dir, cache_bytes=cfg.runtime.cache_mb << 20, bf16=cfg.runtime.bf16
    )
    head_inputs = load_users(emb, root, cfg, train, val)
    # Freed heap goes back to the system between phases: the threads of the next phase allocate
    # from arenas of their own, so what this one freed is not necessarily reused.
    release_memory()
    # A scenario whose training users hold one class has nothing to separate: its adapter
    # would be noise registered as tuned. It is left without one (served with its query).
    classes = train.groupby("scenario")["label"].nunique()
    one_class = [s.name for s in chosen if classes.get(s.name, 0) < 2]
    if one_class:
        log.warning("not tuning %s: the train split holds one class; they serve the base "
                    "embedding (their query alone)", one_class)  # fmt: skip
        chosen = [s for s in chosen if s.name not in one_class]
    positives = train[train["label"] == 1].groupby("scenario").size().to_dict()
    encoder = emb.model.text_encoder
    groups = groups_for(chosen, positives, cfg, lambda t: encoder.encode(t).numpy())
    steps_on = sample_users(train, cfg.train_users, cfg.runtime.seed)
    adapters = _tune_groups(emb, groups, steps_on, cfg)
    release_memory()
    if cfg.bag_head_step > 0:
        fit_heads(emb, adapters, train, head_inputs, cfg.bag_head_step, cfg.runtime.seed)
        release_memory()
    if cfg.val_guard:
        from qanchor.tune.guard import guard, keeper

        keep = keeper(model_dir, emb, guard_vectors) if guard_vectors else None
        adapters = guard(emb, adapters, train, val, cfg, on_vectors=keep)
    for adapter in adapters:
        save_adapter(model_dir, adapter)
    return adapters


def _tune_groups(
    emb: Embedder, groups: list[list[Scenario]], labels: pd.DataFrame, cfg: TuneConfig
) -> list[ScenarioAdapter]:
    """:func:`tune_group` over ``groups``, adapters in group order. Groups are independent (own
    prompt, prototypes, optimiser and seeded sampler), so one runs per core side by side
    (:mod:`qanchor.infer.threads`; the prefix cache they share is locked)."""
    # One bar for the whole stage (not one per group): a line per scenario would be noise.
    with progress(total=len(groups) * cfg.steps, desc="tune", unit="step") as bar:

        def run(group: list[Scenario]) -> list[ScenarioAdapter]:
            log.info("tuning %s", [s.name for s in group])
            return tune_group(emb, group, labels, cfg, on_step=bar.update)

        return [a for got in map_threads(run, groups, emb.device) for a in got]
