"""The Feast objects that ``feature_repo/`` declares, pointed at one built dataset.

The declarations are imported once per repo (Feast's imports make that cost seconds); each
load returns a deep copy whose file sources read the given dataset, so stores over different
builds never share an object.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from pathlib import Path
from typing import Any

from qanchor.errors import QAnchorError
from qanchor.features.config import FeatureStoreConfig

_LOCK = threading.Lock()
_DECLARED: dict[tuple, list[Any]] = {}


def declared(repo: str | Path) -> list[Any]:
    """The Feast objects declared in ``repo``'s modules, imported once per version of its files.

    The modules are executed under names of their own (not imported as ``definitions``), so a
    repo never shadows or is shadowed by another module of that name.
    """
    import feast
    from feast.data_source import DataSource

    kinds = (feast.Project, feast.Entity, DataSource, feast.FeatureView, feast.FeatureService)
    modules = sorted(p.resolve() for p in Path(repo).glob("*.py") if p.name != "__init__.py")
    key = tuple((str(p), p.stat().st_mtime_ns) for p in modules)
    with _LOCK:
        if key not in _DECLARED:
            objects: list[Any] = []
            for i, path in enumerate(modules):
                spec = importlib.util.spec_from_file_location(f"_qanchor_feature_repo_{i}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                objects += [v for v in vars(module).values() if isinstance(v, kinds)]
            _DECLARED[key] = objects
        return _DECLARED[key]


def load_objects(cfg: FeatureStoreConfig) -> list[Any]:
    """The repo's Feast objects with every file source reading ``cfg.data``.

    A declared source names its file in the dataset (``snapshots.parquet``...); the directory it
    was declared with is replaced by ``cfg.data``. Views present only over files the dataset has.
    """
    from feast import FileSource

    data = Path(cfg.data).resolve()
    if not (data / "manifest.json").is_file():
        raise QAnchorError(f"{cfg.data}: not a built dataset (run `qanchor data build` first)")
    # One deep copy of the whole list keeps the sharing between views and their sources.
    objects = copy.deepcopy(declared(cfg.repo))
    sources = {id(s): s for o in objects for s in (o, getattr(o, "batch_source", None))
               if isinstance(s, FileSource)}  # fmt: skip
    for src in sources.values():
        src.file_options.uri = str(data / Path(src.path).name)
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
