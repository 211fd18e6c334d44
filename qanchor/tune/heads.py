"""Tuning's side of the bag heads (:mod:`qanchor.tune.bag_head`): fit them, and judge them on
validation users the way the guard judges prompts."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from qanchor.tune.adapters import ScenarioAdapter
from qanchor.tune.bag_head import HeadInput, fit_bag_head

log = logging.getLogger(__name__)


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
    from qanchor.progress import bar

    # Minutes on large user bases (100,000 synthetic users: ~7 min for 12 heads on 70,000).
    for a in bar(adapters, desc="tune bag heads", unit="head"):
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
