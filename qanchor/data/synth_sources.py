"""The synthetic event sources: bill, miniprogram, spm, search (session streams) and app installs.

Each source turns the population's latents into ``(user, second, text, value)`` arrays:
when (``synth_timeline``), what (per-user item draws from ``synth_vocab``, plus episode and shift
overrides from their onset on) and how it reads (templates in ``synth_render``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qanchor.data import synth_render as R
from qanchor.data.synth_tables import BILL_KINDS, SPM_ENTRIES
from qanchor.data.synth_timeline import DAY, Clock, expand_sessions, sample_sessions, session_starts
from qanchor.data.synth_vocab import Vocab, pay_methods, vocab
from qanchor.data.synth_world import AFF, DIG, IMP, INV, PAR, TRAITS

# source: (events per day for an average user, mean events per session, seconds between events
# of a session, trait loadings of how much the user uses this source at all)
STREAMS = {
    "bill": (0.30, 1.3, 900.0, {AFF: 0.2, IMP: 0.2, PAR: 0.1}),
    "miniprogram": (0.22, 1.8, 150.0, {DIG: 0.4}),
    "spm": (0.25, 2.5, 40.0, {DIG: 0.3, INV: 0.1}),
    "search": (0.12, 1.8, 60.0, {DIG: 0.3}),
}
# Share of a user's events replaced by episode content once the episode has started.
_EPISODE_SHARE = {"bill": 0.15, "miniprogram": 0.2, "spm": 0.2, "search": 0.3}
_SHIFT_SHARE = 0.15  # share of post-shift events that show new items, per unit of strength
_SHIFT_INFLATION = 0.3  # post-shift amounts grow by this factor per unit of strength
_SHIFT_MINI_EXTRA = 0.6  # extra mini-program sessions after the shift, per unit of strength

BILL_TEMPLATES = {
    "buy": (
        "paid {amount} at {merchant} ({category}) via {method}",
        "payment of {amount} to {merchant} ({category}) by {method}",
        "{merchant} ({category}): {amount} paid with {method}",
    ),
    "repay": (
        "repaid {amount} to {merchant} ({category}) via {method}",
        "loan instalment of {amount} paid to {merchant} with {method}",
    ),
    "fee": (
        "late fee of {amount} charged by {merchant}",
        "{merchant} charged an overdue fee of {amount}",
    ),
    "cash": (
        "cash advance of {amount} from {merchant} credit card",
        "withdrew {amount} as a cash advance at {merchant}",
    ),
    "transfer": (
        "moved {amount} to {merchant} ({category})",
        "invested {amount} in {merchant} ({category})",
    ),
}
MINI_TEMPLATES = (
    "opened {category} mini-program ({program}): {action}",
    "{program} mini-program [{category}]: {action}",
    "used the {program} mini-program ({category}): {action}",
)
SEARCH_TEMPLATES = ("searched: {query}", 'searched for "{query}"', "search: {query}")
APP_TEMPLATES = ("installed app: {app} ({category})", "app installed: {app} ({category})")


@dataclass(frozen=True)
class Population:
    """What every source needs to know about the users.

    Attributes:
        traits: Latent traits, shape (users, len(TRAITS)).
        activity: Activity multiplier per user (mean ~1, heavy-tailed).
        trip_onset: Day the trip-planning episode starts (``inf`` without one).
        crunch_onset: Day the cash-crunch episode starts (``inf`` without one).
        clock: Time frame, trend, night share and shift.
        scale: Global multiplier on event volume.
    """

    traits: np.ndarray
    activity: np.ndarray
    trip_onset: np.ndarray
    crunch_onset: np.ndarray
    clock: Clock
    scale: float


Events = dict[str, np.ndarray]  # user (int), second (int64), text (object), value (float64)


def stream_events(source: str, pop: Population, rng: np.random.Generator) -> Events:
    """All events of one session-based source (``bill``, ``miniprogram``, ``spm``, ``search``)."""
    per_day, size, gap, loads = STREAMS[source]
    clock = pop.clock
    weights = np.array([loads.get(t, 0.0) for t in TRAITS])
    # Normalised so the source's average volume does not depend on its loadings.
    affinity = np.exp(pop.traits @ weights - 0.5 * weights @ weights)
    rate = pop.scale * per_day * pop.activity * affinity / size
    users, day = sample_sessions(rng, clock, rate, 0.0, clock.total_days)
    if source == "miniprogram" and clock.shift_day < clock.total_days:
        # The shift also changes the source mix: mini-programs gain sessions from then on.
        extra = sample_sessions(
            rng, clock, rate * _SHIFT_MINI_EXTRA * clock.strength, clock.shift_day, clock.total_days
        )
        users, day = np.concatenate([users, extra[0]]), np.concatenate([day, extra[1]])
    starts = session_starts(rng, clock, users, day)
    users, second = expand_sessions(rng, users, starts, size, gap, clock.total_days * DAY)
    voc = vocab(source)
    items = _draw_items(rng, voc, pop, users, second / DAY, _EPISODE_SHARE[source])
    post = second >= clock.shift_day * DAY
    text, value = _RENDER[source](rng, voc, pop, users, items, post)
    return {"user": users, "second": second, "text": text, "value": value}


def _draw_items(
    rng: np.random.Generator,
    voc: Vocab,
    pop: Population,
    users: np.ndarray,
    day: np.ndarray,
    share: float,
) -> np.ndarray:
    """Per-event items: the user's usual mix, then episode and shift content from their onset."""
    cum = R.user_cdf(pop.traits, voc)
    items = R.draw_rows(cum, users, rng.random(len(users)))
    items = R.override(rng, items, day >= pop.trip_onset[users], share, voc, "travel")
    items = R.override(rng, items, day >= pop.crunch_onset[users], share, voc, "lending")
    shift_share = min(0.9, _SHIFT_SHARE * pop.clock.strength)
    return R.override(rng, items, day >= pop.clock.shift_day, shift_share, voc, "new")


# Renderers: (events' users, items, post-shift flags) -> (text, value). One signature for all,
# so ``stream_events`` can dispatch on the source name.
def _render_bill(
    rng: np.random.Generator,
    voc: Vocab,
    pop: Population,
    users: np.ndarray,
    items: np.ndarray,
    post: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Payments: amount from the item's typical price, the user's affluence and the shift."""
    methods = pay_methods()
    method = R.draw_rows(R.user_cdf(pop.traits, methods), users, rng.random(len(users)))
    # Richer users pay more for the same thing; the shift inflates every amount.
    wealth = np.exp(0.35 * pop.traits[users, TRAITS.index(AFF)])
    inflation = np.where(post, 1.0 + _SHIFT_INFLATION * pop.clock.strength, 1.0)
    amount = np.maximum(R.lognormal(rng, voc.scale[items] * wealth, 0.6) * inflation, 0.5)
    amount = np.round(amount, 2)
    templates = [t for kind in BILL_KINDS for t in BILL_TEMPLATES[kind]]
    tid = R.pick_template(rng, voc.kind[items], [len(BILL_TEMPLATES[k]) for k in BILL_KINDS])
    slots = {name: arr[items] for name, arr in voc.slots.items()}
    slots |= {"amount": R.money(amount), "method": methods.slots["method"][method]}
    return R.fill(templates, tid, slots), amount


def _render_mini(
    rng: np.random.Generator,
    voc: Vocab,
    pop: Population,
    users: np.ndarray,
    items: np.ndarray,
    post: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mini-program uses; value = session duration in seconds."""
    engaged = np.exp(0.15 * pop.traits[users, TRAITS.index(DIG)])
    seconds = np.round(R.lognormal(rng, voc.scale[items] * engaged, 0.7))
    tid = R.pick_template(rng, np.zeros(len(items), dtype=np.int64), [len(MINI_TEMPLATES)])
    slots = {name: arr[items] for name, arr in voc.slots.items()}
    return R.fill(MINI_TEMPLATES, tid, slots), seconds


def _render_spm(
    rng: np.random.Generator,
    voc: Vocab,
    pop: Population,
    users: np.ndarray,
    items: np.ndarray,
    post: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Navigation paths from an entry page; value = dwell time in seconds."""
    entries = np.array(SPM_ENTRIES, dtype=object)
    entry = entries[rng.integers(0, len(entries), len(items))]
    seconds = np.round(R.lognormal(rng, voc.scale[items], 0.6))
    return entry + " > " + voc.slots["path"][items], seconds


def _render_search(
    rng: np.random.Generator,
    voc: Vocab,
    pop: Population,
    users: np.ndarray,
    items: np.ndarray,
    post: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Search queries; no value."""
    tid = R.pick_template(rng, np.zeros(len(items), dtype=np.int64), [len(SEARCH_TEMPLATES)])
    text = R.fill(SEARCH_TEMPLATES, tid, {"query": voc.slots["query"][items]})
    return text, np.full(len(items), np.nan)


_RENDER = {
    "bill": _render_bill,
    "miniprogram": _render_mini,
    "spm": _render_spm,
    "search": _render_search,
}
