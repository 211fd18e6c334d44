"""Which users pretraining reads: on a large build, a seeded sample of its training users.

Pretraining samples a fixed number of pairs (``small``: 200 steps x 16 = 3,200), so past some
thousands of training users more users add memory (every loaded user's inputs stay resident)
and setup time, not pairs seen. ``--max-train-users`` bounds them; the held-out users the retrieval
check scores are read as well, so that check is the same as on the whole build.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def pretrain_users(
    built_dir: str | Path, max_train_users: int, eval_users: int, seed: int = 0
) -> list[str] | None:
    """Sorted ids of at most ``max_train_users`` training users (a seeded sample in
    :func:`qanchor.eval.probe.ranked` order) plus the test users the retrieval check scores.
    None: every user (``max_train_users`` 0, or no more training users than that)."""
    from qanchor.eval.probe import ranked
    from qanchor.model.data import require_built
    from qanchor.model.retrieval import KINDS, retrieval_rows

    if not max_train_users:
        return None
    root = require_built(built_dir)
    users = pd.read_parquet(root / "users.parquet", columns=["user_id", "split"])
    train = users.loc[users["split"] == "train", "user_id"]
    if len(train) <= max_train_users:
        return None
    keep = set(ranked(train, seed)[:max_train_users])
    test = set(users.loc[users["split"] == "test", "user_id"])
    pairs = pd.read_parquet(root / "pairs.parquet", columns=["user_id", "kind"])
    for kind in KINDS:
        keep.update(retrieval_rows(pairs, test, eval_users, kind)["user_id"])
    return sorted(keep)
