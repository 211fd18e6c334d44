"""What each synthetic source can say, and which latent traits make each item likely.

An item (a merchant, a mini-program action, a page path, an app, a search query) has a base
logit and trait loadings; a user's item distribution is ``softmax(base + loadings @ traits)``.
Tags link items to time-varying behaviour:

    travel   boosted after a user's ``trip_planned`` onset
    lending  boosted after a user's ``cash_crunch`` onset
    new      absent until a behaviour shift, then popular (the drift demo)

The tables are plain data in ``synth_tables``; ``vocab(source)`` turns one into arrays (cached,
built on first use).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from qanchor.data.synth_tables import (
    ACTION_LOAD,
    APP,
    BILL,
    BILL_KINDS,
    MINI,
    PAY_METHODS,
    SEARCH,
    SPM,
)
from qanchor.data.synth_world import TRAITS


@dataclass(frozen=True)
class Vocab:
    """One source's items as arrays (one entry per item).

    Attributes:
        slots: Text pieces per item, by template slot name (e.g. ``merchant``, ``category``).
        base: Base logits.
        loadings: Trait loadings, shape (items, len(TRAITS)).
        tags: Episode/shift tag per item ("" for none).
        scale: Typical value (amount or seconds); NaN where the source has none.
        kind: Template family per item (index into the source's template kinds).
    """

    slots: dict[str, np.ndarray]
    base: np.ndarray
    loadings: np.ndarray
    tags: np.ndarray
    scale: np.ndarray
    kind: np.ndarray


def _build(rows: list[tuple[dict[str, str], float, dict[str, float], str, float, int]]) -> Vocab:
    """Turn ``(slots, base, loadings, tag, scale, kind)`` rows into a ``Vocab``."""
    names = list(rows[0][0])
    load = np.zeros((len(rows), len(TRAITS)))
    for i, row in enumerate(rows):
        for trait, w in row[2].items():
            load[i, TRAITS.index(trait)] += w
    return Vocab(
        slots={n: np.array([r[0][n] for r in rows], dtype=object) for n in names},
        base=np.array([r[1] for r in rows], dtype=np.float64),
        loadings=load,
        tags=np.array([r[3] for r in rows], dtype=object),
        scale=np.array([r[4] for r in rows], dtype=np.float64),
        kind=np.array([r[5] for r in rows], dtype=np.int64),
    )


def _split(base: float, k: int) -> float:
    # Items expanded from one row share its probability mass, so adding names adds variety only.
    return base - float(np.log(k))


def _bill_rows() -> list:
    return [
        ({"merchant": m, "category": cat}, _split(b, len(ms)), ld, tag, amt, BILL_KINDS.index(kd))
        for cat, ms, amt, b, ld, tag, kd in BILL
        for m in ms
    ]


def _mini_rows() -> list:
    return [
        (
            {"program": p, "category": cat, "action": a},
            _split(b, len(acts)),
            {**ld, **{t: ld.get(t, 0) + w for t, w in ACTION_LOAD.get(a, {}).items()}},
            tag,
            secs,
            0,
        )
        for p, cat, b, ld, tag, secs, acts in MINI
        for a in acts
    ]


def _spm_rows() -> list:
    # Dwell time grows with the number of pages visited.
    return [({"path": p}, b, ld, tag, 15.0 * (p.count(">") + 1), 0) for p, b, ld, tag in SPM]


def _app_rows() -> list:
    return [({"app": a, "category": c}, b, ld, tag, np.nan, 0) for a, c, b, ld, tag in APP]


def _search_rows() -> list:
    return [
        ({"query": q.format(f) if fill else q}, _split(b, max(len(fill), 1)), ld, tag, np.nan, 0)
        for q, fill, b, ld, tag in SEARCH
        for f in (fill or (None,))
    ]


_ROWS = {
    "bill": _bill_rows,
    "miniprogram": _mini_rows,
    "spm": _spm_rows,
    "app": _app_rows,
    "search": _search_rows,
}


@cache
def vocab(source: str) -> Vocab:
    """The item arrays of one source (``bill``, ``miniprogram``, ``spm``, ``app``, ``search``)."""
    return _build(_ROWS[source]())


@cache
def pay_methods() -> Vocab:
    """Payment methods as a tiny vocabulary (drawn per bill event from the user's mix)."""
    return _build([({"method": n}, b, ld, "", np.nan, 0) for n, b, ld in PAY_METHODS])
