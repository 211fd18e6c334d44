"""What tuning reads of its users: whole inputs of the users it embeds, and of every training
user only what the bag heads read.

Tuning embeds samples: the prompt steps' training users (``train_users``) and the guard's
training and validation users (``guard_users``), each at most a few thousand. The bag heads fit
on every training user but read only each one's whole-history TF-IDF row and profile
(``UserInput.head_input``). Whole inputs (events, bags, encoded texts) of every training and
validation user peaked tuning at 4.2 GB on 100,000 synthetic users, and took ~11 min together
with the heads.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qanchor.tune.bag_head import HeadInput
from qanchor.tune.config import TuneConfig

HEAD_BLOCK = 8192  # users whose tables are built at once for their bag-head inputs


def embedded_users(train: pd.DataFrame, val: pd.DataFrame, cfg: TuneConfig) -> set[str]:
    """The users tuning embeds: the prompt steps' sample and, with the guard, its samples.

    Samples are prefixes of :func:`qanchor.eval.probe.ranked` order, which does not depend on
    who else is listed, so the stages draw the same users from these as from every user.
    """
    from qanchor.eval.probe import sample_users
    from qanchor.tune.guard import sample_users as guard_sample

    seed = cfg.runtime.seed
    users = set(sample_users(train, cfg.train_users, seed)["user_id"])
    if cfg.val_guard:
        for frame in (train, val):
            users |= guard_sample(frame, set(frame["user_id"]), cfg.guard_users, seed)
    return users


def load_users(
    emb, root: Path, cfg: TuneConfig, train: pd.DataFrame, val: pd.DataFrame
) -> dict[str, HeadInput]:  # noqa: ANN001 - an Embedder
    """Load the users tuning embeds into ``emb``; return every training user's bag-head input
    (none without heads). Users are read :data:`HEAD_BLOCK` at a time."""
    from qanchor.model.data import BuiltData

    embedded = embedded_users(train, val, cfg)
    heads = cfg.bag_head_step > 0 and emb.model.bag_vectorizer is not None
    trained = set(train["user_id"]) if heads else set()
    wanted = sorted(embedded | trained)
    inputs: dict[str, HeadInput] = {}
    snapshots, profiles = [], []
    for a in range(0, len(wanted), HEAD_BLOCK):
        data = BuiltData.load(root, cfg.runtime.feature_repo, users=wanted[a : a + HEAD_BLOCK])
        if heads:
            # Sampled training users' tables are built again by load_users below: a few
            # thousand users' pandas work, against carrying two kinds of input in one table.
            mine = data.snapshots[data.snapshots["user_id"].isin(trained)]
            table = emb.inputs.table(mine, data.profiles)
            inputs |= zip(table.user_ids, (x.head_input() for x in table.inputs), strict=True)
        snapshots.append(data.snapshots[data.snapshots["user_id"].isin(embedded)])
        if data.profiles is not None:
            profiles.append(data.profiles[data.profiles["user_id"].isin(embedded)])
    emb.load_users(
        pd.concat(snapshots, ignore_index=True),
        pd.concat(profiles, ignore_index=True) if profiles else None,
    )
    return inputs
