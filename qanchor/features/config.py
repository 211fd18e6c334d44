"""Where the feature store lives: the typed config, the Feast repo config and the declarations.

``feature_repo/`` is declarative and source-controlled. What varies per run is kept out of it:

- the built dataset the file sources read: :func:`qanchor.features.declarations.load_objects`
  points the declared file sources at it, so the registry records absolute paths to that
  dataset (the plain ``feast`` CLI reads it from ``QANCHOR_FEATURE_DATA`` instead);
- the mutable state (file registry, SQLite online store) goes to ``work_dir``, by default
  ``<data>/feature_store`` beside the data it was built from (a rebuilt dataset starts clean);
- the online store: ``feature_store.yaml`` (SQLite, embedded) or ``feature_store.redis.yaml``
  (production), whose connection string comes from ``QANCHOR_REDIS_URL`` or ``redis_url``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qanchor.config import option
from qanchor.errors import QAnchorError

REDIS_ENV = "QANCHOR_REDIS_URL"
PROFILES = {"sqlite": "feature_store.yaml", "redis": "feature_store.redis.yaml"}


@dataclass(frozen=True)
class FeatureStoreConfig:
    """Settings of ``qanchor features ...`` and of every read through the feature store."""

    data: str = option("", "built dataset directory the sources read (qanchor data build)")
    repo: str = option("feature_repo", "Feast repo with the declarations and feature_store*.yaml")
    work_dir: str | None = option(
        None, "registry and SQLite online store directory (default: <data>/feature_store)"
    )
    online_store: str = option("sqlite", "online store: 'sqlite' (embedded) or 'redis'")
    redis_url: str | None = option(
        None, f"Redis connection string host:port[,db=N,...] (default: ${REDIS_ENV})"
    )

    @property
    def state_dir(self) -> Path:
        """The directory of the registry and the SQLite online store."""
        return Path(self.work_dir) if self.work_dir else Path(self.data) / "feature_store"


def repo_config(cfg: FeatureStoreConfig) -> Any:
    """The Feast ``RepoConfig`` of ``cfg``: the repo's yaml profile with this run's paths."""
    import yaml
    from feast import RepoConfig

    if cfg.online_store not in PROFILES:
        raise QAnchorError(f"online store {cfg.online_store!r}: choose one of {sorted(PROFILES)}")
    path = Path(cfg.repo) / PROFILES[cfg.online_store]
    if not path.is_file():
        raise QAnchorError(f"{path}: no such Feast profile (is --repo a feature repo?)")
    raw = yaml.safe_load(os.path.expandvars(path.read_text()))
    state = cfg.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    if isinstance(raw.get("registry"), str):  # a SQL/remote registry (a mapping) is left as is
        raw["registry"] = str(state / "registry.db")
    online = raw["online_store"]
    if online.get("type") == "sqlite":
        online["path"] = str(state / "online_store.db")
    elif online.get("type") == "redis":
        online["connection_string"] = _redis_url(cfg, online.get("connection_string", ""))
    return RepoConfig(**raw, repo_path=Path(cfg.repo).resolve())


def _redis_url(cfg: FeatureStoreConfig, from_yaml: str) -> str:
    from qanchor.env import read_env

    env = read_env(FeatureStoreConfig, {REDIS_ENV: "redis_url"})
    url = cfg.redis_url or env.get("redis_url") or ""
    if not url and "$" not in from_yaml:
        url = from_yaml
    if not url:
        raise QAnchorError(f"the redis profile needs a connection string: set ${REDIS_ENV} "
                           "(host:port[,db=N,password=...]) or --redis-url")  # fmt: skip
    return url
