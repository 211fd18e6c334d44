"""Feast declarations of qanchor's user features (declarative only: no logic, no I/O).

The sources read a built dataset directory (``qanchor data build``): the access layer
``qanchor.features`` points them at the dataset it is given (it keeps each file name below and
replaces the directory); for the plain ``feast`` CLI export ``QANCHOR_FEATURE_DATA``. Everything else is fixed here:

- entity ``user`` (join key ``user_id``);
- ``user_event_history``: the capped recent events per source and the whole-history bag
  (distinct texts with counts and last times) as parallel lists, fed in batch by
  ``snapshots.parquet`` and in streaming by the push source ``user_events_push``: one view,
  so one online read serves both and a push replaces both at once;
- ``user_profile`` and ``user_activity``: the profile and the activity aggregates; their columns
  depend on the dataset (any set of sources), so Feast infers their schema at ``apply``;
- services ``qanchor_training`` (everything, point-in-time) and ``qanchor_serving`` (what the
  embedding service reads online).
"""

import os
from datetime import timedelta

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Project,
    PushSource,
    ValueType,
)
from feast.types import Array, Float64, Int64, String, UnixTimestamp

DATA = os.environ.get("QANCHOR_FEATURE_DATA", "../data/built")
# A snapshot stays valid until the next one replaces it (its freshness is the build and push
# cadence); ttl 0 means no expiry, so old synthetic dates still join and serve.
NO_EXPIRY = timedelta(0)

project = Project(name="qanchor", description="Per-user features of the Q-Anchor model")

user = Entity(
    name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="A platform user"
)

snapshots_source = FileSource(
    name="user_snapshots",
    path=f"{DATA}/snapshots.parquet",
    timestamp_field="snapshot_ts",
    description="Per user and snapshot time: capped recent events per source and the "
    "whole-history bag (list columns)",
)
aggregates_source = FileSource(
    name="user_aggregates",
    path=f"{DATA}/aggregates.parquet",
    timestamp_field="snapshot_ts",
)
profiles_source = FileSource(
    name="user_profiles",
    path=f"{DATA}/profiles.parquet",
    timestamp_field="snapshot_ts",
)
events_push = PushSource(
    name="user_events_push",
    batch_source=snapshots_source,
    description="A user's event history after new events arrived (stream ingestion)",
)

user_event_history = FeatureView(
    name="user_event_history",
    entities=[user],
    ttl=NO_EXPIRY,
    schema=[
        Field(name="event_source", dtype=Array(String)),
        Field(name="event_ts", dtype=Array(UnixTimestamp)),
        Field(name="event_text", dtype=Array(String)),
        Field(name="event_value", dtype=Array(Float64)),
        Field(name="bag_source", dtype=Array(String)),
        Field(name="bag_text", dtype=Array(String)),
        Field(name="bag_count", dtype=Array(Int64)),
        Field(name="bag_last_ts", dtype=Array(UnixTimestamp)),
    ],
    source=events_push,
    online=True,
)
user_profile = FeatureView(
    name="user_profile", entities=[user], ttl=NO_EXPIRY, source=profiles_source, online=True
)
activity_push = PushSource(
    name="user_activity_push",
    batch_source=aggregates_source,
    description="A user's activity aggregates updated with new events (stream ingestion)",
)
user_activity = FeatureView(
    name="user_activity", entities=[user], ttl=NO_EXPIRY, source=activity_push, online=True
)

qanchor_training = FeatureService(
    name="qanchor_training", features=[user_event_history, user_profile, user_activity]
)
qanchor_serving = FeatureService(
    name="qanchor_serving", features=[user_event_history, user_profile, user_activity]
)
