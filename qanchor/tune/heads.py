"""Tuning's side of the bag heads (:mod:`qanchor.tune.bag_head`): fit them, and judge them on
validation users the way the guard judges prompts."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from qanchor.tune.adapters import ScenarioAdapter
from qanchor.tune.bag_head import HeadInput, fit_bag_head

log = logging.getLogger(__name__)

# A head's fit peaks at ~BYTES_PER_TERM bytes per stored TF-IDF term of its training users (the
# float64 matrix and sklearn's fold copies; tracemalloc: 766 MB for 70,000 users' 29.8 M terms).
# Heads run side by side only while two such fits stay under SIDE_BY_SIDE_BYTES: at 100,000 users
# two in flight lifted tuning's peak by 1.4 GB.
BYTES_PER_TERM = 26
SIDE_BY_SIDE_BYTES = 512 << 20


def fit_heads(emb, adapters: list[ScenarioAdapter], train: pd.DataFrame,
              head_inputs: dict[str, HeadInput], step: float, seed: int) -> None:  # fmt: skip
    """Fit each adapter's bag head on its scenario's training users (``adapter.head``), those
    of ``head_inputs`` (user -> ``UserInput.head_input()``, :func:`qanchor.tune.inputs.load_users`).

    Needs the model's bag vocabulary (a model pretrained with ``bag_dim > 0``); without it the
    adapters keep no head.
    """
    vectorizer = emb.model.bag_vectorizer
    if vectorizer is None:
        log.warning("no bag heads: the model has no bag-of-events vocabulary (bag_dim 0)")
        return
    import torch
    from threadpoolctl import threadpool_limits

    from qanchor.infer.threads import map_threads
    from qanchor.progress import bar

    def fit(a: ScenarioAdapter) -> None:
        tr = train[(train["scenario"] == a.name) & train["user_id"].isin(head_inputs)]
        ids = tr["user_id"].astype(str).tolist()
        inputs = [head_inputs[u] for u in ids]
        a.head = fit_bag_head(
            inputs, tr["label"].to_numpy(), ids, len(vectorizer.terms), a.prototypes, step, seed
        )
        if a.head is not None:
            a.meta["bag_head"] = {"C": a.head.C, "folds": int(a.head.coef.shape[0]),
                                  "trees": bool(a.head.trees), "train_users": len(ids),
                                  "weights": [round(float(w), 4) for w in a.head.weights],
                                  "step": step}  # fmt: skip
        progress.update()

    # Minutes on large user bases (100,000 synthetic users, 12 heads on 70,000: 8 min 15 s one
    # at a time, 4 min 40 s two at a time on 2 cores). Heads are independent one-thread fits
    # (sklearn's solvers and LightGBM release the GIL in their kernels), so one runs per core
    # while memory allows. BLAS is held to one thread here, once: threadpoolctl's limit is
    # process-wide, and threads each setting and restoring it would race (fit_bag_head's own
    # limit then finds 1 and restores 1).
    terms = sum(len(row[0]) for row, _ in head_inputs.values() if row is not None)
    side_by_side = 2 * terms * BYTES_PER_TERM <= SIDE_BY_SIDE_BYTES
    progress = bar(total=len(adapters), desc="tune bag heads", unit="head")
    with progress, threadpool_limits(limits=1, user_api="blas"):
        if side_by_side:
            map_threads(fit, adapters, torch.device("cpu"))
        else:
            for a in adapters:
                fit(a)


def val_auc(
    x: np.ndarray, train: tuple[list[int], pd.DataFrame], val: tuple[list[int], pd.DataFrame],
    seed: int,
) -> float:  # fmt: skip
    """ROC AUC on the ``val`` rows of ``x`` of a linear probe fitted on its ``train`` rows, each
    given as (rows of ``x``, their label rows): how the guard judges prompts and heads."""
    from qanchor.eval.metrics import auc_ks
    from qanchor.eval.probe import linear_probe

    (rows_tr, tr), (rows_va, va) = train, val
    scores = linear_probe(x[rows_tr], tr["label"].to_numpy(), x[rows_va], seed)
    return round(auc_ks(va["label"].to_numpy(), scores)[0], 4)


def judge_head(
    adapter: ScenarioAdapter, x: np.ndarray, ids: list[str], head_inputs: list,
    train: tuple[list[int], pd.DataFrame], val: tuple[list[int], pd.DataFrame], seed: int,
    enforce: bool,
) -> None:  # fmt: skip
    """Record whether ``adapter.head`` raises the validation probe AUC of the vectors ``x``, and
    (if ``enforce``) keep the head only if it does.

    Args:
        adapter: the scenario as the guard keeps it (its prototypes give the head's axis).
        x: [users, d] the scenario's vectors without the head, rows in ``ids`` order.
        head_inputs: what the head reads of the users (``UserInput.head_input``), in ``ids`` order.
        train, val: (rows of ``x``, their label rows) of the probe's training and scored users.
    """
    head = adapter.head.with_axis(adapter.prototypes)
    with_head = head.shifted(x, ids, head_inputs)
    aucs = {name: val_auc(v, train, val, seed) for name, v in (("without", x), ("with", with_head))}
    raises = aucs["with"] > aucs["without"]
    kept = raises or not enforce
    adapter.head = head if kept else None
    adapter.meta.setdefault("val_guard", {})["bag_head"] = {"kept": kept, "val_auc": aucs}
    if not kept:
        log.info("%s: the bag head does not raise the val AUC %s; dropped", adapter.name, aucs)
