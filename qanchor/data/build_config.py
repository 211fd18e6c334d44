"""Settings of ``qanchor data build`` (kept apart from the build so the CLI parser is cheap).

``qanchor.data.build`` re-exports :class:`BuildConfig`; this module imports no data library,
so ``qanchor --help`` builds its options without loading pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.config import option


@dataclass
class BuildConfig:
    """Settings of ``qanchor data build``."""

    cutoff: str | None = option(
        None, "history/future cut (ISO date, UTC); default: last event minus future_days"
    )
    future_days: int = option(30, "length of the future period summarised by D_future")
    history_days: int | None = option(
        None, "keep only this many days of history before the cutoff (None: all)"
    )
    val_fraction: float = option(
        0.1, "share of users in the val split (unless labels give a split)"
    )
    test_fraction: float = option(
        0.2, "share of users in the test split (unless labels give a split)"
    )
    seed: int = option(0, "salt of the deterministic user split and topic rotation")
    max_events_per_source: int = option(
        64, "events kept per user and source in a snapshot (most recent)"
    )
    source_caps: dict[str, int] = option(
        {}, "per-source overrides of max_events_per_source, e.g. app=10"
    )
    max_bag_texts: int = option(
        2000, "distinct texts per user and source in the whole-history bag (most frequent)"
    )
    feature_spec_from: str | None = option(
        None,
        "model directory (or 'served': the promoted model) whose recorded feature spec "
        "sets the caps and history window, so a serving build shapes rows as training did",
    )
    source_semantics: bool = option(
        True,
        "word pair answers by sources.yaml; false ignores the file (neutral wording: an "
        "ablation of the source semantics)",
    )
    future_horizon_days: float | None = option(
        1.0,
        "events dated later than now + this many days are quarantined (clock errors, "
        "placeholder dates that would move the derived cutoff); none: no limit",
    )
    action_words: int = option(6, "words of an event text kept as its action key")
    future_max_items: int = option(8, "actions named in a D_future answer")
    uqa_per_user: int = option(4, "D_uqa topic pairs per user")
    recent_days: int = option(14, "window of the 'recent' D_uqa topic")
    top_k: int = option(5, "top actions kept per user and source for pair answers")
    scenarios: list[str] = option(
        [], "keep only these scenarios (their labels and definitions); empty: all"
    )

    PRESETS = {
        "tiny": {"max_events_per_source": 8, "uqa_per_user": 2, "future_max_items": 4},
        "small": {"max_events_per_source": 32, "uqa_per_user": 4},
        # The paper's caps per source (bill/mini-program/spm/app/search order in the paper).
        "paper": {
            "max_events_per_source": 250,
            "uqa_per_user": 8,
            "future_max_items": 12,
            "source_caps": {"bill": 250, "miniprogram": 150, "spm": 150, "app": 10, "search": 100},
        },
    }
