"""Class pools and starting prototypes of a scenario, shared by tuning and its guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from qanchor.data.contract import Scenario
from qanchor.infer.engine import Embedder, Suffix
from qanchor.tune.config import TuneConfig


def class_pools(emb: Embedder, labels: pd.DataFrame) -> dict[int, list[int]]:
    known = labels[labels["user_id"].isin(emb.user_ids)]
    return {c: emb.rows(known.loc[known["label"] == c, "user_id"].tolist()) for c in (0, 1)}


def balanced(
    pools: dict[int, list[int]], n: int, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Half of each class (with replacement): rare positives would otherwise barely appear."""
    rows, y = [], []
    for c in (0, 1):
        if pools[c]:
            k = n // 2 if pools[1 - c] else n
            rows += rng.choice(pools[c], size=k).tolist()
            y += [c] * k
    return rows, y


@torch.no_grad()
def init_prototypes(
    emb: Embedder,
    s: Scenario,
    prompt: torch.Tensor,
    pools: dict[int, list[int]],
    rng,
    cfg: TuneConfig,
) -> torch.Tensor:
    """Class means of u under the initial prompt: training starts from a sensible boundary."""
    rows, y = balanced(pools, max(cfg.batch_size, 16), rng)
    u = emb.suffix_forward(
        emb.prefixes(rows), [emb.suffix_embeds(Suffix(s.query, prompt))] * len(rows)
    )
    y = torch.as_tensor(y, device=u.device)
    means = [u[y == c].mean(0) if bool((y == c).any()) else torch.randn_like(u[0]) for c in (0, 1)]
    return F.normalize(torch.stack(means), dim=-1).clone()
