"""Where the feature store lives: the typed config, the Feast repo config and the declarations.

``feature_repo/`` is declarative and source-controlled. What varies per run is kept out of it:

- the built dataset the file sources read: the declarations take it from the deployment
  variable ``QANCHOR_FEATURE_DATA``, which :func:`load_objects` sets while it loads them, so the
  registry records absolute paths to that dataset;
- the mutable state (file registry, SQLite online store) goes to ``work_dir``, by default
  ``<data>/feature_store`` beside the data it was built from (a rebuilt dataset starts clean);
- the online store: ``feature_store.yaml`` (SQLite, embedded) or ``feature_store.redis.yaml``
  (production), whose connection string comes from ``QANCHOR_REDIS_URL`` or ``redis_url``.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qanchor.config import option
from qanchor.errors import QAnchorError

DATA_ENV = "QANCHOR_FEATURE_DATA"
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


@contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def load_objects(cfg: FeatureStoreConfig) -> list[Any]:
    """The Feast objects declared in the repo's modules, with sources pointing at ``cfg.data``.

    Each module is executed afresh under a unique name (not imported): Python's import cache
    would otherwise hand back objects bound to the dataset of an earlier call.
    """
    import feast
    from feast.data_source import DataSource

    kinds = (feast.Project, feast.Entity, DataSource, feast.FeatureView, feast.FeatureService)
    data = str(Path(cfg.data).resolve())
    if not Path(data, "manifest.json").is_file():
        raise QAnchorError(f"{cfg.data}: not a built dataset (run `qanchor data build` first)")
    modules = sorted(p for p in Path(cfg.repo).glob("*.py") if p.name != "__init__.py")
    objects: list[Any] = []
    with _env(DATA_ENV, data):
        for path in modules:
            spec = importlib.util.spec_from_file_location(f"_qanchor_repo_{uuid.uuid4().hex}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            objects += [v for v in vars(module).values() if isinstance(v, kinds)]
    return _present(objects)


def _present(objects: list[Any]) -> list[Any]:
    """Drop views over files the dataset does not have (profiles are optional in the contract).

    Their projections leave the feature services too, so a dataset without profiles serves
    events and aggregates only, rather than failing at ``apply``.
    """
    from feast import FeatureService, FeatureView, FileSource

    def missing(src: Any) -> bool:
        return isinstance(src, FileSource) and not Path(src.path).is_file()

    gone = {o.name for o in objects if isinstance(o, FeatureView) and missing(o.batch_source)}
    kept = [
        o for o in objects if not (missing(o) or (isinstance(o, FeatureView) and o.name in gone))
    ]
    return [_without(o, gone) if isinstance(o, FeatureService) and gone else o for o in kept]


def _without(svc: Any, gone: set[str]) -> Any:
    """A copy of a feature service without the named views (filtering its declared features)."""
    from feast import FeatureService

    features = [f for f in svc._features if getattr(f, "name", None) not in gone]
    return FeatureService(name=svc.name, features=features, tags=svc.tags,
                          description=svc.description, owner=svc.owner)  # fmt: skip


def check_columns(objects: list[Any]) -> None:
    """Fail clearly if a view's declared features are not columns of its parquet file.

    A dataset built before a view gained a feature (the whole-history bag, say) would otherwise
    register fine and fail only at materialisation, deep inside Feast.
    """
    import pyarrow.parquet as pq
    from feast import FeatureView, FileSource

    for view in objects:
        src = getattr(view, "batch_source", None)
        if not (isinstance(view, FeatureView) and isinstance(src, FileSource) and view.features):
            continue
        missing = sorted({f.name for f in view.features} - set(pq.read_schema(src.path).names))
        if missing:
            raise QAnchorError(
                f"{src.path} lacks the columns {missing} of feature view {view.name!r}: it was "
                "built by an older qanchor; rebuild it (`qanchor data build`) and apply again"
            )
