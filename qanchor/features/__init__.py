"""The feature store (Feast) behind training and serving: declarations in ``feature_repo/``.

    qanchor features apply       --data data/built            # register views over a build
    qanchor features materialize --data data/built            # load the online store
    qanchor features push        --data data/built --events new_events.parquet

Training reads point-in-time rows (:func:`historical_snapshots`), serving reads the online
store (:func:`online_snapshots`), and :func:`push_events` streams new events into the online
event history and reports which users' cached prefixes went stale. ``feast`` is imported only
inside these functions (importing it takes about ten seconds).
"""

from qanchor.features.config import FeatureStoreConfig
from qanchor.features.push import PushResult, prefix_invalidator, push_events
from qanchor.features.store import (
    UserFeatures,
    apply,
    historical_snapshots,
    materialize,
    online_snapshots,
    store,
    sync,
)

__all__ = [
    "FeatureStoreConfig",
    "PushResult",
    "UserFeatures",
    "apply",
    "historical_snapshots",
    "materialize",
    "online_snapshots",
    "prefix_invalidator",
    "push_events",
    "store",
    "sync",
]
