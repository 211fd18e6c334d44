"""How the stages that run the model run: seed, precision, where users come from, cache budget.

Pretraining, tuning and evaluation each nest one of these blocks (``cfg.runtime``), so each
setting is declared once and spelled the same everywhere: ``--seed``, ``--bf16`` and
``--feature-repo`` on all three, ``--cache-mb`` where users are embedded through a trained model::

    qanchor tune --model runs/model --data data/built --seed 1 --bf16 off --cache-mb 512
    resolve(EvalConfig, "tiny", overrides={"runtime": {"feature_repo": "feature_repo"}})

Only ``qanchor pretrain`` places the model on a device (``PretrainConfig.device``): tuning and
evaluation run where the saved model loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.config import option


@dataclass
class RuntimeConfig:
    """Settings shared by pretraining, tuning and evaluation."""

    seed: int = option(
        0,
        "seed of the stage's random draws: initialisation, sampling and dropout (pretrain, tune), "
        "probes and GBDT (evaluate)",
    )
    bf16: str = option(
        "auto", "bf16 autocast: 'auto' (where native: CUDA, AVX512-BF16/AMX CPUs), 'on', 'off'"
    )
    feature_repo: str | None = option(
        None, "Feast repo to read user snapshots from (None: the build's snapshots.parquet)"
    )


@dataclass
class EmbedRuntimeConfig(RuntimeConfig):
    """The runtime of the stages that embed users through a trained model (tune, evaluate)."""

    cache_mb: int = option(1024, "prefix KV cache budget while embedding users (MB)")
