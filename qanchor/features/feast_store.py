"""Reads and writes of the Feast feature store: apply, materialise, training and serving reads.

    cfg = FeatureStoreConfig(data="data/built")
    apply(cfg); materialize(cfg)
    train = historical_snapshots(cfg, users[["user_id", "cutoff"]])   # point in time, offline
    live = online_snapshots(cfg, ["u000001", "u000002"])               # latest, online store
    emb.load_users(live.snapshots, live.tabular)

Both reads return :class:`UserFeatures`, frames shaped like the built dataset's
``snapshots.parquet`` and ``profiles.parquet``, so the model and the inference engine read a
feature-store user exactly as they read a parquet user.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from qanchor.data.snapshots import BAG_COLUMNS, EVENT_COLUMNS
from qanchor.errors import QAnchorError
from qanchor.features.config import FeatureStoreConfig, repo_config
from qanchor.features.declarations import check_columns, load_objects

HISTORY_VIEW, PROFILE_VIEW, ACTIVITY_VIEW = "user_event_history", "user_profile", "user_activity"
# The list features of the event-history view, with the numpy dtype snapshots.parquet holds.
LIST_DTYPES = {"event_source": object, "event_ts": "datetime64[us]", "event_text": object,
               "event_value": np.float64, "bag_source": object, "bag_text": object,
               "bag_count": np.int64, "bag_last_ts": "datetime64[us]"}  # fmt: skip
assert tuple(LIST_DTYPES) == EVENT_COLUMNS + BAG_COLUMNS
TRAINING_SERVICE, SERVING_SERVICE = "qanchor_training", "qanchor_serving"
# Epoch start of a first materialisation: the views have no ttl, so all history counts.
EPOCH = datetime(1970, 1, 2, tzinfo=UTC)

_STORES: dict[FeatureStoreConfig, Any] = {}
_SERVICES: dict[tuple[FeatureStoreConfig, str], Any] = {}


@dataclass
class UserFeatures:
    """Per-user features, one row per requested user, in request order.

    Attributes:
        snapshots: ``user_id``, ``snapshot_ts``, the recent-event and the whole-history bag
            lists, as in snapshots.parquet.
        profiles: ``user_id`` plus the profile columns (None if the store has no profile view).
        aggregates: ``user_id`` plus the activity aggregates (None if not requested).
    """

    snapshots: pd.DataFrame
    profiles: pd.DataFrame | None = None
    aggregates: pd.DataFrame | None = None

    @property
    def tabular(self) -> pd.DataFrame | None:
        """The model's tabular source: profile plus activity aggregates (``Embedder.load_users``)."""
        from qanchor.model.profile import tabular_frame

        return tabular_frame(self.profiles, self.aggregates)

    def versions(self) -> dict[str, str]:
        """A hash per user of everything served for it (not the time): it changes with a feature."""
        parts = [self.snapshots.drop(columns="snapshot_ts")]
        for extra in (self.profiles, self.aggregates):
            if extra is not None:
                parts.append(extra.drop(columns=["user_id", "snapshot_ts"], errors="ignore"))
        joined = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
        out = {}
        for uid, *values in joined.itertuples(index=False):
            text = repr([_canonical(v) for v in values])
            out[str(uid)] = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        return out


def _canonical(value: Any) -> Any:
    """A value independent of the read's column dtypes (an int column turns float when another
    user of the same read is missing), so a user's version does not depend on its neighbours."""
    if isinstance(value, np.ndarray | list):
        return np.asarray(value).tolist()
    if value is None or pd.isna(value):
        return None
    if isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_):
        return float(value)
    return str(value)


def store(cfg: FeatureStoreConfig) -> Any:
    """The ``feast.FeatureStore`` of ``cfg``, kept per config (its registry cache is warm)."""
    if cfg not in _STORES:
        from feast import FeatureStore

        _STORES[cfg] = FeatureStore(config=repo_config(cfg))
    return _STORES[cfg]


def apply(cfg: FeatureStoreConfig) -> list[str]:
    """Register the repo's declarations over ``cfg.data`` (idempotent). Returns object names."""
    objects = load_objects(cfg)
    check_columns(objects)
    fs = store(cfg)
    fs.apply(objects)
    fs.refresh_registry()
    for key in [k for k in _SERVICES if k[0] == cfg]:
        del _SERVICES[key]  # re-read the services this apply may have changed
    return [o.name for o in objects]


def sync(cfg: FeatureStoreConfig, end_ts: datetime | None = None, full: bool = False) -> datetime:
    """Apply and materialise: afterwards the store serves ``cfg.data`` offline and online."""
    apply(cfg)
    return materialize(cfg, end_ts, full)


def materialize(
    cfg: FeatureStoreConfig, end_ts: datetime | str | None = None, full: bool = False
) -> datetime:
    """Load the latest feature rows up to ``end_ts`` into the online store.

    ``end_ts`` defaults to now, or just past the newest source row if that is later (a dataset
    with made-up future dates, or a clock behind the data, would otherwise serve nothing).
    Incremental: after the first run only rows newer than the previous end are loaded. The
    registry remembers what was loaded, not the online store, so after the online store lost
    its data (a fresh Redis, say) pass ``full=True`` to load everything again.
    Returns the end timestamp used.
    """
    fs = store(cfg)
    views = fs.list_feature_views()
    end = _utc(end_ts or max(datetime.now(UTC), _newest_row(views)))
    if not full and any(v.materialization_intervals for v in views):
        fs.materialize_incremental(end_date=end)
    else:
        fs.materialize(start_date=EPOCH, end_date=end)
    return end


def _newest_row(views: list[Any]) -> datetime:
    """Just past the newest timestamp of the views' file sources (the epoch if none)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    newest = EPOCH
    for v in views:
        src = v.batch_source
        col = pq.read_table(src.path, columns=[src.timestamp_field]).column(0)
        if len(col) and pc.max(col).is_valid:
            newest = max(newest, _utc(pc.max(col).as_py()))
    return newest + pd.Timedelta(seconds=1)


def _utc(ts: Any) -> datetime:
    """A time as an aware UTC datetime (naive input is UTC, as everywhere in the data)."""
    t = pd.Timestamp(ts)
    return (t.tz_localize(UTC) if t.tzinfo is None else t.tz_convert(UTC)).to_pydatetime()


def historical_snapshots(
    cfg: FeatureStoreConfig, entity_df: pd.DataFrame, service: str = TRAINING_SERVICE
) -> UserFeatures:
    """Point-in-time training rows: each user's features as of its own cutoff.

    Args:
        cfg: the feature store.
        entity_df: ``user_id`` and the cutoff, as ``event_timestamp`` or ``cutoff`` (the
            column of users.parquet). Feast joins, per row, the latest feature row at or before
            that time, so nothing that happened after a user's cutoff reaches its row.
        service: the feature service to read.

    Returns:
        The rows in ``entity_df`` order; ``snapshot_ts`` is the requested cutoff.
    """
    fs, svc = store(cfg), _service(cfg, service)
    ent = entity_df.rename(columns={"cutoff": "event_timestamp"})[["user_id", "event_timestamp"]]
    ent = ent.assign(event_timestamp=pd.to_datetime(ent["event_timestamp"], utc=True))
    got = fs.get_historical_features(entity_df=ent, features=svc).to_df()
    got["event_timestamp"] = pd.to_datetime(got["event_timestamp"], utc=True)
    got = got.drop_duplicates(["user_id", "event_timestamp"])  # a repeated request row
    rows = ent.merge(got, on=["user_id", "event_timestamp"], how="left")
    rows = rows.rename(columns={"event_timestamp": "snapshot_ts"}).reset_index(drop=True)
    return _split({c: rows[c] for c in rows.columns}, svc)


def online_snapshots(
    cfg: FeatureStoreConfig, user_ids: list[str], service: str = SERVING_SERVICE
) -> UserFeatures:
    """The latest features of ``user_ids`` from the online store (what serving reads).

    ``snapshot_ts`` is the time of the user's event-history row (the build's cutoff, or the
    time of the last push); users the store does not know get empty lists (events and bag).
    """
    fs, svc = store(cfg), _service(cfg, service)
    resp = fs.get_online_features(features=svc, entity_rows=[{"user_id": u} for u in user_ids])
    got = resp.to_dict(include_event_timestamps=True)
    cols = {k: v for k, v in got.items() if not k.endswith("__ts")}
    # Feast reports whole seconds, 0 for a user it does not have.
    secs = pd.Series(got.get("event_source__ts", [0] * len(user_ids)), dtype="int64")
    cols["snapshot_ts"] = pd.to_datetime(secs.where(secs > 0), unit="s", utc=True)
    return _split(cols, svc)


def _service(cfg: FeatureStoreConfig, name: str) -> Any:
    """The registered feature service, kept per store: Feast caches its request plan per
    service object, and a fresh object per read would rebuild the plan every time."""
    from feast.errors import FeatureServiceNotFoundException

    key = (cfg, name)
    if key not in _SERVICES:
        try:
            _SERVICES[key] = store(cfg).get_feature_service(name)
        except FeatureServiceNotFoundException as exc:
            raise QAnchorError(f"feature service {name!r} is not registered in {cfg.state_dir}: "
                               f"run `qanchor features apply --data {cfg.data}` first") from exc  # fmt: skip
    return _SERVICES[key]


def _split(cols: dict[str, Any], svc: Any) -> UserFeatures:
    """Cut joined columns into the snapshot, profile and aggregate frames by feature view."""
    views = {p.name: [f.name for f in p.features] for p in svc.feature_view_projections}
    n = len(cols["user_id"])
    snaps = {"user_id": cols["user_id"], "snapshot_ts": cols["snapshot_ts"]}
    for col, dtype in LIST_DTYPES.items():
        values = [[] if _missing(v) else v for v in cols.get(col, [None] * n)]
        is_time = dtype == "datetime64[us]"
        snaps[col] = _times(values) if is_time else [_as_array(v, dtype) for v in values]

    def part(view: str) -> pd.DataFrame | None:
        if view not in views:
            return None
        return pd.DataFrame({"user_id": cols["user_id"], **{f: cols[f] for f in views[view]}})

    return UserFeatures(pd.DataFrame(snaps), part(PROFILE_VIEW), part(ACTIVITY_VIEW))


def _missing(value: Any) -> bool:
    return value is None or (np.isscalar(value) and pd.isna(value))


def _times(values: list[Any]) -> list[np.ndarray]:
    """Time lists (``event_ts``, ``bag_last_ts``) as datetime64[us] arrays (naive UTC, like
    the parquet).

    Offline reads give numpy arrays; online reads give UTC-aware datetimes, converted here in
    one vectorised call for all users (per-element conversion dominated a 100-user read).
    """
    if not values:
        return []
    splits = np.cumsum([len(v) for v in values])[:-1]
    flat = [t for v in values for t in v]
    if flat and not any(isinstance(v, np.ndarray) for v in values):
        arr = pd.to_datetime(flat, utc=True).tz_localize(None).to_numpy()
    else:
        arr = np.concatenate([np.asarray(v, dtype="datetime64[us]") for v in values])
    return np.split(arr.astype("datetime64[us]"), splits)


def _as_array(value: Any, dtype: Any) -> np.ndarray:
    """One list feature as the numpy array snapshots.parquet holds."""
    if dtype is np.float64:  # a null value (Feast's None) is NaN, as in the parquet
        return np.asarray([np.nan if v is None else v for v in value], dtype=np.float64)
    return np.asarray(value, dtype=dtype)
