"""UserU pretraining pairs: D_future (next-period summary) and D_uqa (grounded topic Q&A).

Both are built from :class:`~qanchor.data.stats.UserStats`, i.e. only from the user's own log,
so every claim in an answer is supported by the data (the paper needs an LLM reflection pass
for that; templates get it by construction). Event values are worded by what ``sources.yaml``
says they are (``wording``): money only for an ``amount`` source, neutral without a declaration.
A :class:`PairGenerator` is the seam where an LLM generator can replace the templates later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from qanchor.data.sources import SourceSpec, spec_for
from qanchor.data.stats import Action, UserStats, bin_label
from qanchor.data.wording import value_answers

FUTURE_QUERY = "What is this user most likely to do next period?"


@dataclass(frozen=True)
class Pair:
    """One pretraining pair: a query about a user and an answer grounded in their data."""

    kind: str  # "future", "uqa" or "qa" (from qa.parquet)
    topic: str
    query: str
    answer: str


class PairGenerator(Protocol):
    """Produces D_uqa pairs for one user. Implementations must only use ``stats``."""

    name: str

    def generate(self, stats: UserStats, n: int) -> list[Pair]: ...


def _events(n: int) -> str:
    return f"{n} event" if n == 1 else f"{n} events"


def _fmt_actions(actions: list[Action], k: int) -> str:
    return ", ".join(f"{a.name} ({a.n}x)" for a in actions[:k])


def future_answer(
    stats: UserStats | None, bins: dict[str, tuple[float, float]], max_items: int
) -> str:
    """Summarise binned future actions, most frequent first but spread over sources.

    Sources are ranked by volume; actions are then taken round-robin across sources so the
    answer covers the user's breadth (diversity) while keeping each source's top actions
    (frequency).
    """
    if stats is None or stats.total == 0:
        return "No activity is expected next period."
    order = sorted(stats.counts, key=lambda s: (-stats.counts[s], s))
    picked: dict[str, list[str]] = {s: [] for s in order}
    budget, depth = max_items, 0
    while budget > 0 and any(len(stats.actions.get(s, [])) > depth for s in order):
        for s in order:
            acts = stats.actions.get(s, [])
            if depth < len(acts) and budget > 0:
                picked[s].append(acts[depth].name)
                budget -= 1
        depth += 1
    parts = [
        f"{s}: {bin_label(stats.counts[s], bins.get(s))} ({_events(stats.counts[s])})"
        + (f", mainly {'; '.join(picked[s])}" if picked[s] else "")
        for s in order
    ]
    quiet = sorted(set(bins) - set(order))
    # No preamble: the query already says "next period", and answers are truncated to a token
    # budget, so the first tokens must already tell users apart.
    text = ". ".join(parts) + "."
    return text + (f" No activity expected in {', '.join(quiet)}." if quiet else "")


def _topic_activity(st: UserStats, bins: dict) -> str:
    parts = [
        f"{s} {bin_label(n, bins.get(s))} ({n})"
        for s, n in sorted(st.counts.items(), key=lambda kv: -kv[1])
    ]
    return (
        f"{_events(st.total)} on {st.active_days} active days; by source: " + ", ".join(parts) + "."
    )


def _topic_recent(st: UserStats, bins: dict) -> str | None:
    if not st.recent:
        return None
    return "Recently: " + ", ".join(f"{a} ({s}, {n}x)" for s, a, n in st.recent[:5]) + "."


def _topic_timing(st: UserStats, bins: dict) -> str | None:
    if not st.tod_share:
        return None
    top = max(st.tod_share, key=lambda k: st.tod_share[k])
    when = "on weekends" if st.weekend_share > 0.4 else "mostly on weekdays"
    return f"Most active in the {top} ({st.tod_share[top]:.0%} of events), {when} ({st.weekend_share:.0%} on weekends)."


def _topic_trend(st: UserStats, bins: dict) -> str | None:
    early, late = st.trend
    if early + late == 0:
        return None
    ratio = (late + 1) / (early + 1)
    word = "increasing" if ratio > 1.3 else ("decreasing" if ratio < 0.77 else "stable")
    since = (
        f"; last event {st.days_since_last:.0f} days before the cutoff"
        if st.days_since_last is not None
        else ""
    )
    return f"Activity is {word}: {early} events in the first third of the period, {late} in the last third{since}."


def _topic_profile(st: UserStats, bins: dict) -> str | None:
    # v == v drops NaN; whole floats print as ints (parquet turns nullable ints into floats).
    items = [
        f"{k}: {int(v) if isinstance(v, float) and v.is_integer() else v}"
        for k, v in st.profile.items()
        if v is not None and v == v
    ]
    return ("Profile: " + ", ".join(items) + ".") if items else None


TOPICS: dict[str, tuple[str, Callable[[UserStats, dict], str | None]]] = {
    "activity": ("How active is this user, and in which sources?", _topic_activity),
    "recent": ("What has this user been doing recently?", _topic_recent),
    "timing": ("When is this user usually active?", _topic_timing),
    "trend": ("How is this user's activity changing over time?", _topic_trend),
    "profile": ("What do we know about this user's profile?", _topic_profile),
}


def _source_query(spec: SourceSpec) -> str:
    # The description tells the model what the (often terse) source name stands for.
    about = f" ({spec.description})" if spec.description else ""
    return f"What does this user do in {spec.name}{about}?"


class TemplateGenerator:
    """Default D_uqa generator: topic templates, one pair per value kind, one per source.

    Args:
        bins: Per-source count terciles of the population (``stats.count_bins``).
        salt: Salt of the per-user topic rotation.
        sources: ``sources.yaml`` specs; undeclared sources are worded neutrally.
    """

    name = "template"

    def __init__(
        self,
        bins: dict[str, tuple[float, float]],
        salt: int = 0,
        sources: dict[str, SourceSpec] | None = None,
    ) -> None:
        self.bins, self.salt, self.sources = bins, salt, sources or {}

    def generate(self, stats: UserStats, n: int) -> list[Pair]:
        candidates = [
            Pair("uqa", topic, query, answer)
            for topic, (query, fn) in TOPICS.items()
            if (answer := fn(stats, self.bins))
        ]
        # Right after "activity" (where the one money topic used to be): a dataset whose only
        # valued source is an amount source keeps its topic order and rotation.
        candidates[1:1] = [
            Pair("uqa", topic, query, answer)
            for topic, query, answer in value_answers(stats, self.sources)
        ]
        candidates += [
            Pair(
                "uqa",
                f"source:{s}",
                _source_query(spec_for(self.sources, s)),
                f"In {s}: {_fmt_actions(acts, 4)}.",
            )
            for s, acts in sorted(stats.actions.items())
        ]
        # A per-user rotation (stable hash) so different users get different topic subsets.
        h = int(
            hashlib.blake2b(f"{self.salt}:{stats.user_id}".encode(), digest_size=4).hexdigest(), 16
        )
        start = h % max(len(candidates), 1)
        return (candidates[start:] + candidates[:start])[:n]
