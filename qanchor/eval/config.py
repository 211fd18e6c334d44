"""Settings of ``qanchor evaluate`` (kept apart from the evaluation so the CLI parser is cheap).

``qanchor.eval.evaluate`` re-exports :class:`EvalConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.config import nested, option
from qanchor.runtime_config import EmbedRuntimeConfig


@dataclass
class EvalConfig:
    """Settings of ``qanchor evaluate``."""

    baselines: list[str] = option(
        ["tfidf_lr", "gbdt_features", "text_mean_pool", "text_mean_pool_recent", "llm_untrained"],
        "baselines to run",
    )
    llm_per_source: int = option(3, "events per source in the llm_untrained text")
    llm_max_prefix_tokens: int | None = option(
        None,
        "token cap of the llm_untrained events text; None: the evaluated model's longest prefix "
        "(both read the same number of prefix positions, at the same cost)",
    )
    # cache_mb stays: configs recorded by earlier evaluations (which the gate re-resolves) carry
    # it; evaluation itself now streams users and fills no prefix cache.
    runtime: EmbedRuntimeConfig = nested(
        EmbedRuntimeConfig,
        "seed, precision of the LLM passes and feature store of evaluation",
        cache_mb=2048,
    )
    max_users: int = option(
        5000,
        "users evaluated, a seeded sample of the labelled users shared by every model (0: all); "
        "bounds evaluation's cost on large user bases",
    )
    cache_features: bool = option(
        True,
        "reuse baseline features (llm_untrained, text_mean_pool*) computed earlier on the same "
        "build content with the same settings, from $QANCHOR_CACHE/baseline_features",
    )
    bootstrap_resamples: int = option(1000, "paired bootstrap resamples of the verdict's interval")
    preset: str | None = option(None, "the preset these settings came from (named in the report)")

    # Each preset records its own name, so every caller that resolves one (CLI, `qanchor run`,
    # the orchestrated stages) gets it into the report without passing it separately.
    PRESETS = {
        "tiny": {
            "preset": "tiny",
            "llm_per_source": 2,
            "runtime": {"bf16": "off"},
        },
        "small": {"preset": "small"},
        "paper": {"preset": "paper", "llm_per_source": 10},
    }
