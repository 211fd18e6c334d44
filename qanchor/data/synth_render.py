"""Vectorised draws of item content and rendering of events as short natural text.

Two tricks keep 10k users x ~100 events fast without per-event Python:

- Per-user categorical draws: each user's item CDF is one row of a matrix; adding the row index
  to every row makes the flattened matrix globally sorted, so one ``searchsorted`` draws an item
  for every event at once.
- Templates: events are grouped by template and concatenated as numpy object arrays (string
  addition runs in C), so rendering costs a few array operations per template, not per event.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

import numpy as np

from qanchor.data.synth_vocab import Vocab

_U_MAX = 1.0 - 1e-9  # keeps row + u strictly below the next row's offset despite rounding


def user_cdf(traits: np.ndarray, voc: Vocab, allow_new: bool = False) -> np.ndarray:
    """Per-user item CDFs, shape (users, items): ``softmax(base + traits @ loadings.T)``.

    Items tagged ``new`` get zero probability unless ``allow_new`` (they appear only through the
    behaviour shift).
    """
    logits = voc.base + traits @ voc.loadings.T
    if not allow_new:
        logits = np.where(voc.tags == "new", -np.inf, logits)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cum = np.cumsum(p, axis=1)
    return cum / cum[:, -1:]


def draw_rows(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw one item per event from row ``rows[i]`` of ``cum`` with uniform ``u[i]``."""
    n, m = cum.shape
    flat = (cum + np.arange(n, dtype=np.float64)[:, None]).ravel()
    pos = np.searchsorted(flat, rows + np.minimum(u, _U_MAX), side="right")
    return pos - rows * m


def draw_global(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw indices from one fixed weight vector (zero weights are never drawn)."""
    cdf = np.cumsum(weights) / weights.sum()
    return np.searchsorted(cdf, np.minimum(u, _U_MAX), side="right")


def override(
    rng: np.random.Generator,
    items: np.ndarray,
    active: np.ndarray,
    prob: float,
    voc: Vocab,
    tag: str,
) -> np.ndarray:
    """Replace a share ``prob`` of the ``active`` events by items tagged ``tag``.

    This is how episodes and the shift change *content* from their onset on: a mixture of the
    user's usual distribution and the tagged pool, weighted by the items' base popularity.
    """
    hit = active & (rng.random(len(items)) < prob)
    weights = np.where(voc.tags == tag, np.exp(voc.base), 0.0)
    out = items.copy()
    out[hit] = draw_global(weights, rng.random(int(hit.sum())))
    return out


def fill(templates: Sequence[str], tid: np.ndarray, slots: Mapping[str, np.ndarray]) -> np.ndarray:
    """Render ``templates[tid[i]]`` with per-event slot values, as an object array of str.

    Args:
        templates: Format strings with named fields, e.g. ``"paid {amount} at {merchant}"``.
        tid: Template index per event.
        slots: Field name -> object array of strings, one per event.
    """
    out = np.empty(len(tid), dtype=object)
    for t, template in enumerate(templates):
        idx = np.flatnonzero(tid == t)
        if idx.size == 0:
            continue
        acc = np.full(idx.size, "", dtype=object)
        for literal, field, _, _ in string.Formatter().parse(template):
            if literal:
                acc = acc + literal
            if field is not None:
                acc = acc + slots[field][idx]
        out[idx] = acc
    return out


def pick_template(rng: np.random.Generator, kind: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """A template index per event: uniform among the variants of the event's kind.

    Templates are laid out kind by kind, ``counts[k]`` variants for kind ``k``.
    """
    counts_arr = np.asarray(counts)
    offsets = np.cumsum(counts_arr) - counts_arr
    variant = np.floor(rng.random(len(kind)) * counts_arr[kind]).astype(np.int64)
    return offsets[kind] + variant


def money(amount: np.ndarray) -> np.ndarray:
    """Format amounts with two decimals ("86.20") as an object array, without a Python loop."""
    cents = np.rint(amount * 100).astype(np.int64)
    whole = (cents // 100).astype(str).astype(object)
    frac = np.char.zfill((cents % 100).astype(str), 2).astype(object)
    return whole + "." + frac


def lognormal(rng: np.random.Generator, median: np.ndarray, sigma: float) -> np.ndarray:
    """Heavy-ish tailed positive values around ``median``."""
    return median * np.exp(sigma * rng.standard_normal(len(median)))
