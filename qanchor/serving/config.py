"""Settings of the embedding service: limits in a typed config, deployment facts from the environment.

    cfg = ServingConfig.from_env()       # what services/service.py does at start-up
    cfg = resolve(ServingConfig, "tiny", overrides={"cache_bytes": 1 << 20, "repo": "feature_repo"})

Deployment facts (which model, which feature store, the cache bound) come from the variables
below, the contract that the deployment manifests set (read by :func:`qanchor.env.read_env`);
the API key is read by :mod:`qanchor.serving.auth` and never stored here.
"""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.config import apply_overrides, nested, option
from qanchor.env import read_env
from qanchor.features.config import FeatureStoreConfig

# Environment variable -> ServingConfig field (``features.*``: the nested FeatureStoreConfig).
ENV = {
    "QANCHOR_MODEL_TAG": "model_tag",
    "QANCHOR_FEATURE_REPO": "features.repo",
    "QANCHOR_FEATURE_DATA": "features.data",
    "QANCHOR_FEATURE_WORK_DIR": "features.work_dir",
    "QANCHOR_ONLINE_STORE": "features.online_store",
    "QANCHOR_REDIS_URL": "features.redis_url",
    "QANCHOR_CACHE_BYTES": "cache_bytes",
    "QANCHOR_RELOAD_SECONDS": "reload_seconds",
}


@dataclass(frozen=True)
class ServingConfig:
    """What the service serves and its limits."""

    PRESETS = {
        "tiny": {"cache_bytes": 8 << 20, "reload_seconds": 0.0},
        "small": {},
        "paper": {"cache_bytes": 8 << 30, "max_batch_pairs": 4096},
    }

    model_name: str = option("qanchor", "registry name of the served model family")
    model_tag: str | None = option(
        None, "pinned model version (qanchor:<version>); None = promoted"
    )
    features: FeatureStoreConfig = nested(
        FeatureStoreConfig, "the Feast store the service reads users from"
    )
    cache_bytes: int = option(256 << 20, "prefix KV cache bound in bytes (per worker process)")
    max_batch_pairs: int = option(1024, "most (user, scenario) pairs in one request (else 413)")
    max_body_bytes: int = option(1 << 20, "largest request body accepted (else 413)")
    max_text_chars: int = option(512, "longest free-text query and user id")
    engine_batch: int = option(64, "(user, scenario) pairs per forward pass")
    batch_wait_ms: float = option(2.0, "how long a batch waits for more concurrent requests")
    explain_tokens: int = option(48, "most tokens an explanation may decode")
    reload_seconds: float = option(60.0, "check the promoted version this often (0 = never)")
    warm_retry_seconds: float = option(
        10.0, "while a failed warm-up keeps the service unready, retry it this often"
    )
    push_max_events: int = option(10_000, "most events in one push request (else 413)")

    @classmethod
    def from_env(cls, **overrides) -> ServingConfig:
        """The config with every set deployment variable (see ``ENV``) applied, then overrides."""
        return apply_overrides(cls(), {**read_env(cls, ENV), **overrides})
