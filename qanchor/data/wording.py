"""How pair answers speak of event values, by the kind ``sources.yaml`` declares per source.

A value is only called money when its source says ``value: amount``: on a movie-rating log the
values are ratings, and a pretraining pair that calls them spending teaches the wrong thing. Each
kind gets its own question, so a user with payments and ratings gets one pair about each, and a
source without a declared kind is worded neutrally ("largest values").

Example::

    value_answers(stats, {"rating": SourceSpec("rating", value="rating", scale=(1, 5))})
    # [("ratings", "What does this user rate highest?", "Highest-rated: ... (rating, 4.5 of 5 ...)")]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qanchor.data.sources import VALUE_KINDS, SourceSpec, spec_for
from qanchor.data.stats import Action, UserStats

MAX_ITEMS = 4  # actions named per answer


@dataclass(frozen=True)
class ValueTopic:
    """The pair about one value kind: its topic name, question and answer opening."""

    topic: str
    query: str
    lead: str


VALUE_TOPICS = {
    "amount": ValueTopic(
        "spending", "What does this user spend the most money on?", "Largest amounts go to"
    ),
    "rating": ValueTopic("ratings", "What does this user rate highest?", "Highest-rated:"),
    "duration": ValueTopic("time", "What takes up most of this user's time?", "Most time goes to"),
    "count": ValueTopic(
        "quantities", "What does this user do in the largest quantities?", "Largest quantities:"
    ),
    "none": ValueTopic(
        "values", "Which of this user's actions carry the largest values?", "Largest values:"
    ),
}


def num(x: float) -> str:
    """A number as people write it: large ones whole, others with at most one decimal."""
    if abs(x) >= 100:
        return f"{x:.0f}"
    r = round(float(x), 1)
    return f"{r:.0f}" if r.is_integer() else f"{r:.1f}"


def _amount(a: Action, spec: SourceSpec) -> str:
    money = f"{num(a.total)} {spec.currency}" if spec.currency else num(a.total)
    return f"{money} in total"


def _rating(a: Action, spec: SourceSpec) -> str:
    mean = num(a.total / a.valued)
    of = f"{mean} of {num(spec.scale[1])}" if spec.scale else mean
    return f"{of} on average over {a.valued} ratings" if a.valued > 1 else f"rated {of}"


def _duration(a: Action, spec: SourceSpec) -> str:
    return f"{num(a.total)} {spec.unit} in total" if spec.unit else f"total duration {num(a.total)}"


def _plain(a: Action, spec: SourceSpec) -> str:
    return f"{num(a.total)} in total"


# kind -> (how one action's values read, its ranking key: smaller first)
_PHRASES: dict[str, tuple[Callable[[Action, SourceSpec], str], Callable[[Action], tuple]]] = {
    "amount": (_amount, lambda a: (-a.total,)),
    # Best mean first; among equal means the more often rated one is the surer claim.
    "rating": (_rating, lambda a: (-a.total / a.valued, -a.valued)),
    "duration": (_duration, lambda a: (-a.total,)),
    "count": (_plain, lambda a: (-a.total,)),
    "none": (_plain, lambda a: (-a.total,)),
}


def _has_value(a: Action, kind: str) -> bool:
    # A sum says something only when positive; a mean rating needs one rated event.
    return a.valued > 0 if kind == "rating" else a.valued > 0 and a.total > 0


def value_answers(stats: UserStats, specs: dict[str, SourceSpec]) -> list[tuple[str, str, str]]:
    """One (topic, query, answer) per value kind among the user's valued actions.

    Args:
        stats: The user's statistics.
        specs: Declared sources; any other source is worded as kind ``none``.

    Returns:
        In :data:`VALUE_KINDS` order; a kind without a valued action of the user is left out.
    """
    by_kind: dict[str, list[tuple[Action, SourceSpec]]] = {}
    for source, actions in stats.actions.items():
        spec = spec_for(specs, source)
        by_kind.setdefault(spec.value, []).extend(
            (a, spec) for a in actions if _has_value(a, spec.value)
        )
    out = []
    for kind in VALUE_KINDS:
        if not by_kind.get(kind):
            continue
        phrase, rank = _PHRASES[kind]
        # Stable sort: ties keep the per-source frequency order the stats already have.
        items = sorted(by_kind[kind], key=lambda item: rank(item[0]))[:MAX_ITEMS]
        topic = VALUE_TOPICS[kind]
        answer = ", ".join(f"{a.name} ({spec.name}, {phrase(a, spec)})" for a, spec in items)
        out.append((topic.topic, topic.query, f"{topic.lead} {answer}."))
    return out
