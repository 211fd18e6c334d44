"""The feature store (Feast) behind training and serving: declarations in ``feature_repo/``.

    qanchor features apply       --data data/built            # register views over a build
    qanchor features materialize --data data/built            # load the online store
    qanchor features push        --data data/built --events new_events.parquet

Training reads point-in-time rows (:func:`historical_snapshots`), serving reads the online
store (:func:`online_snapshots`), and :func:`push_events` streams new events into the online
event history and reports which users' cached prefixes went stale. ``feast`` is imported only
inside these functions (importing it takes about ten seconds).
"""

import importlib

# Where each public name lives; loaded on first use (PEP 562), so importing the light
# ``qanchor.features.config`` (the CLI's option parser does) does not pull pandas in.
_HOMES = {
    "FeatureStoreConfig": "config",
    "PushResult": "push",
    "prefix_invalidator": "push",
    "push_events": "push",
    "UserFeatures": "feast_store",
    "apply": "feast_store",
    "historical_snapshots": "feast_store",
    "materialize": "feast_store",
    "online_snapshots": "feast_store",
    "store": "feast_store",
    "sync": "feast_store",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
