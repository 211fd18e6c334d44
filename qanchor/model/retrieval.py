"""Held-out retrieval check: does u(user, query) find the user's own answer among candidates?"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from qanchor.model import layout as L
from qanchor.model.data import UserTable
from qanchor.model.network import QAnchorModel


@torch.no_grad()
def embed_pairs(
    model: QAnchorModel, table: UserTable, rows: list[int], queries: list[str], answers: list[str],
    vectors: torch.Tensor | None, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """u for (user row, query) and v for answer, without the KV cache (reference path)."""
    lay = model.layout
    segs = [
        [lay.prefix(table.inputs[r]), lay.suffix(q)] for r, q in zip(rows, queries, strict=True)
    ]
    batch = L.collate(segs, [table.inputs[r] for r in rows], lay.pad).to(device)

    def lookup(ids: torch.Tensor) -> torch.Tensor:
        if vectors is not None:
            return vectors[ids]
        uniq, inv = torch.unique(ids, return_inverse=True)
        return model.event_vectors([table.texts[i] for i in uniq.tolist()])[inv]

    bag = lookup(batch.bag_text) if model.cfg.whole_history else None
    u, _ = model.anchor(batch, lookup(batch.ev_text), bag)
    sem = [lay.semantic(a) for a in answers]
    v = model.semantic(
        L.pad(sem, lay.pad).to(device), L.pad([[1] * len(x) for x in sem], 0).to(device)
    )
    return u.float(), v.float()


# D_future pairs (predict the next period) and topic pairs (describe the history).
KINDS = ("future", "uqa")


def retrieval_rows(pairs: pd.DataFrame, users, max_users: int, kind: str) -> pd.DataFrame:  # noqa: ANN001
    """The pairs :func:`retrieval_accuracy` scores: one per user of ``users`` that has a pair of
    ``kind``, the first ``max_users`` users by sorted id."""
    sel = pairs[(pairs["kind"] == kind) & pairs["user_id"].isin(users)].drop_duplicates("user_id")
    return sel.sort_values("user_id").head(max_users)


def retrieval_accuracy(
    model: QAnchorModel, table: UserTable, pairs: pd.DataFrame, users: list[str], max_users: int,
    group: int, device: torch.device, kind: str = "future", vectors: torch.Tensor | None = None,
) -> dict[str, float]:  # fmt: skip
    """Top-1 accuracy and MRR of each user's own answer among ``group`` candidates.

    Users are taken in a fixed order (sorted ids, first ``max_users``) and split into groups of
    ``group``; within a group every user's u is scored against every v. Chance is 1/group.
    """
    index = table.index()
    sel = retrieval_rows(pairs, users, max_users, kind)
    n = len(sel) - len(sel) % group
    if n == 0:
        return {
            "top1": float("nan"),
            "mrr": float("nan"),
            "chance": 1.0 / group,
            "users": 0,
            "group": group,
        }
    was_training = model.training
    model.eval()
    hits, rr = [], []
    for start in range(0, n, group):
        chunk = sel.iloc[start : start + group]
        rows = [index[u] for u in chunk["user_id"]]
        u, v = embed_pairs(
            model, table, rows, chunk["query"].tolist(), chunk["answer"].tolist(), vectors, device
        )
        sims = (u @ v.T).cpu().numpy()
        rank = (sims > np.diag(sims)[:, None]).sum(1)  # 0 = own answer ranked first
        hits += (rank == 0).tolist()
        rr += (1.0 / (rank + 1)).tolist()
    model.train(was_training)
    return {
        "top1": float(np.mean(hits)),
        "mrr": float(np.mean(rr)),
        "chance": 1.0 / group,
        "users": n,
        "group": group,
    }
