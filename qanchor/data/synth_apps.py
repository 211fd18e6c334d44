"""The ``app`` source: each user's installed apps, one event per install.

Users install 10-40 distinct apps (more for digitally engaged users). Which apps is a trait-driven
draw without replacement; episode apps (travel before a trip, lending in a cash crunch) are more
likely and installed after the episode's onset, and the shift brings installs of new apps.
"""

from __future__ import annotations

import numpy as np

from qanchor.data import synth_render as R
from qanchor.data.synth_sources import APP_TEMPLATES, Events, Population
from qanchor.data.synth_timeline import session_starts, trend_times
from qanchor.data.synth_vocab import Vocab, vocab
from qanchor.data.synth_world import DIG, TRAITS, sigmoid

_MIN_APPS, _MAX_APPS = 10, 40
_EPISODE_BOOST = 2.0  # logit boost of an episode's apps for users in that episode
_SHIFT_INSTALL = 0.35  # chance per user and new app of installing it after the shift, per strength


def app_events(pop: Population, rng: np.random.Generator) -> Events:
    """Install events for every user (value is NaN: an install has no amount)."""
    voc = vocab("app")
    n = len(pop.traits)
    users, items = _installed(pop, rng, voc)
    day = trend_times(rng.random(len(users)), pop.clock.beta[users], 0.0, pop.clock.total_days)
    day = _after_onset(rng, day, items, pop.trip_onset[users], voc.tags == "travel", pop)
    day = _after_onset(rng, day, items, pop.crunch_onset[users], voc.tags == "lending", pop)
    new_users, new_items, new_day = _shift_installs(pop, rng, voc, n)
    users = np.concatenate([users, new_users])
    items = np.concatenate([items, new_items])
    second = session_starts(rng, pop.clock, users, np.concatenate([day, new_day]))
    tid = R.pick_template(rng, np.zeros(len(items), dtype=np.int64), [len(APP_TEMPLATES)])
    slots = {name: arr[items] for name, arr in voc.slots.items()}
    text = R.fill(APP_TEMPLATES, tid, slots)
    return {"user": users, "second": second, "text": text, "value": np.full(len(users), np.nan)}


def _installed(
    pop: Population, rng: np.random.Generator, voc: Vocab
) -> tuple[np.ndarray, np.ndarray]:
    """Which apps each user has: a weighted draw of k distinct apps (Gumbel top-k)."""
    n = len(pop.traits)
    logits = voc.base + pop.traits @ voc.loadings.T
    trip = np.isfinite(pop.trip_onset)[:, None] & (voc.tags == "travel")
    crunch = np.isfinite(pop.crunch_onset)[:, None] & (voc.tags == "lending")
    logits = logits + _EPISODE_BOOST * (trip | crunch)
    logits = np.where(voc.tags == "new", -np.inf, logits)
    eligible = int((voc.tags != "new").sum())
    digital = pop.traits[:, TRAITS.index(DIG)]
    share = sigmoid(0.9 * digital + 0.6 * rng.standard_normal(n) - 0.2)
    k = np.round(_MIN_APPS + (_MAX_APPS - _MIN_APPS) * share).astype(np.int64)
    k = np.minimum(k, eligible)
    keys = logits + rng.gumbel(size=logits.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    users, rank = np.nonzero(np.arange(order.shape[1])[None, :] < k[:, None])
    return users, order[users, rank]


def _after_onset(
    rng: np.random.Generator,
    day: np.ndarray,
    items: np.ndarray,
    onset: np.ndarray,
    tagged: np.ndarray,
    pop: Population,
) -> np.ndarray:
    """Move installs of an episode's apps to after the episode's onset (for users who have one)."""
    move = tagged[items] & np.isfinite(onset)
    start = np.where(move, onset, 0.0)
    later = start + rng.random(len(day)) * (pop.clock.total_days - start)
    return np.where(move, later, day)


def _shift_installs(
    pop: Population, rng: np.random.Generator, voc: Vocab, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Installs of the shift's new apps, uniformly after the shift date."""
    clock = pop.clock
    new_apps = np.flatnonzero(voc.tags == "new")
    if clock.shift_day >= clock.total_days or clock.strength <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    chance = min(0.9, _SHIFT_INSTALL * clock.strength)
    users, which = np.nonzero(rng.random((n, len(new_apps))) < chance)
    start = max(clock.shift_day, 0.0)
    day = start + rng.random(len(users)) * (clock.total_days - start)
    return users, new_apps[which], day
