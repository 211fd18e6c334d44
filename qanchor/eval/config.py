"""Settings of ``qanchor evaluate`` (kept apart from the evaluation so the CLI parser is cheap).

``qanchor.eval.evaluate`` re-exports :class:`EvalConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.config import option


@dataclass
class EvalConfig:
    """Settings of ``qanchor evaluate``."""

    baselines: list[str] = option(
        ["tfidf_lr", "gbdt_features", "text_mean_pool", "text_mean_pool_recent", "llm_untrained"],
        "baselines to run",
    )
    llm_per_source: int = option(3, "events per source in the llm_untrained text")
    llm_max_prefix_tokens: int = option(192, "token cap of the llm_untrained events text")
    cache_mb: int = option(2048, "prefix KV cache budget while embedding (MB)")
    seed: int = option(0, "probe and GBDT seed")
    bf16: str = option("auto", "bf16 autocast of the LLM passes: auto (where native), on, off")
    feature_repo: str | None = option(
        None, "Feast repo to read user snapshots from (None: the build's snapshots.parquet)"
    )
    bootstrap_resamples: int = option(1000, "paired bootstrap resamples of the verdict's interval")
    preset: str | None = option(None, "the preset these settings came from (named in the report)")

    # Each preset records its own name, so every caller that resolves one (CLI, `qanchor run`,
    # the orchestrated stages) gets it into the report without passing it separately.
    PRESETS = {
        "tiny": {"preset": "tiny", "llm_per_source": 2, "llm_max_prefix_tokens": 64, "bf16": "off"},
        "small": {"preset": "small"},
        "paper": {"preset": "paper", "llm_per_source": 10, "llm_max_prefix_tokens": 1024},
    }
