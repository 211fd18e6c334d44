"""The embedded (SQLite) feature store: apply, point-in-time training reads, online reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from feature_helpers import LATER, REPO, as_lists, assert_profiles_equal, copy_built, rows_at

from qanchor.features import (
    FeatureStoreConfig,
    historical_snapshots,
    online_snapshots,
    store,
    sync,
)


def test_apply_registers_the_declared_objects(sqlite_store: FeatureStoreConfig) -> None:
    fs = store(sqlite_store)
    views = {v.name: v for v in fs.list_feature_views()}
    assert set(views) == {"user_event_history", "user_profile", "user_activity"}
    history = {f.name: str(f.dtype) for f in views["user_event_history"].features}
    assert history == {"event_source": "Array(String)", "event_ts": "Array(UnixTimestamp)",
                       "event_text": "Array(String)", "event_value": "Array(Float64)",
                       "bag_source": "Array(String)", "bag_text": "Array(String)",
                       "bag_count": "Array(Int64)", "bag_last_ts": "Array(UnixTimestamp)"}  # fmt: skip
    # Aggregate and profile columns depend on the dataset: Feast inferred them at apply.
    sources = json.loads(Path(sqlite_store.data, "manifest.json").read_text())["sources"]
    activity = {f.name for f in views["user_activity"].features}
    assert {f"{s}__count" for s in sources} | {"total__count"} <= activity
    assert "age" in {f.name for f in views["user_profile"].features}
    assert {s.name for s in fs.list_feature_services()} == {"qanchor_training", "qanchor_serving"}
    push = fs.get_data_source("user_events_push")
    assert push.batch_source.path == str(Path(sqlite_store.data, "snapshots.parquet").resolve())
    assert (sqlite_store.state_dir / "registry.db").is_file()
    assert not (REPO / "data").exists()  # the source-controlled repo stays clean


def test_training_rows_hold_nothing_after_the_users_cutoff(
    sqlite_store: FeatureStoreConfig, two_snapshots: Path
) -> None:
    users = pd.read_parquet(two_snapshots / "users.parquet")
    cutoff = users["cutoff"].iloc[0]
    snaps = pd.read_parquet(two_snapshots / "snapshots.parquet")
    early = historical_snapshots(sqlite_store, users[["user_id", "cutoff"]])
    late = historical_snapshots(sqlite_store, users.assign(cutoff=cutoff + LATER))
    naive_cutoff = cutoff.tz_localize(None)
    early_ts = [t for lst in early.snapshots["event_ts"] for t in lst]
    late_ts = [t for lst in late.snapshots["event_ts"] for t in lst]
    assert early_ts and max(early_ts) < naive_cutoff
    # The later snapshot rows exist and hold post-cutoff events: the check above is not vacuous.
    assert sum(t >= naive_cutoff for t in late_ts) > 0
    assert as_lists(early.snapshots) == as_lists(rows_at(snaps, cutoff))
    assert as_lists(late.snapshots) == as_lists(rows_at(snaps, cutoff + LATER))
    assert (early.snapshots["snapshot_ts"] == cutoff).all()
    aggs = pd.read_parquet(two_snapshots / "aggregates.parquet")
    want = rows_at(aggs, cutoff).set_index("user_id").loc[users["user_id"], "total__count"]
    assert early.aggregates["total__count"].tolist() == want.tolist()
    assert (late.aggregates["total__count"] >= early.aggregates["total__count"]).all()


def test_training_rows_follow_the_request_order_and_repeat_users(
    sqlite_store: FeatureStoreConfig, two_snapshots: Path
) -> None:
    users = pd.read_parquet(two_snapshots / "users.parquet")
    cutoff = users["cutoff"].iloc[0]
    ids = users["user_id"].tolist()[:5][::-1]
    ent = pd.DataFrame(
        {"user_id": ids + ids[:1], "event_timestamp": [cutoff] * 5 + [cutoff + LATER]}
    )
    got = historical_snapshots(sqlite_store, ent).snapshots
    assert got["user_id"].tolist() == ent["user_id"].tolist()
    assert got["snapshot_ts"].tolist() == ent["event_timestamp"].tolist()


def test_online_read_equals_the_latest_snapshot(
    sqlite_store: FeatureStoreConfig, two_snapshots: Path
) -> None:
    users = pd.read_parquet(two_snapshots / "users.parquet")["user_id"].tolist()
    latest = rows_at(pd.read_parquet(two_snapshots / "snapshots.parquet"),
                     pd.read_parquet(two_snapshots / "users.parquet")["cutoff"].iloc[0] + LATER)  # fmt: skip
    live = online_snapshots(sqlite_store, users)
    assert live.snapshots["user_id"].tolist() == users
    assert as_lists(live.snapshots) == as_lists(latest)
    assert (live.snapshots["snapshot_ts"] == latest["snapshot_ts"].iloc[0]).all()
    assert_profiles_equal(live.profiles, pd.read_parquet(two_snapshots / "profiles.parquet"))
    # Serving reads the activity aggregates too: with the profile they are the tabular source.
    aggs = pd.read_parquet(two_snapshots / "aggregates.parquet")
    assert_profiles_equal(live.aggregates, rows_at(aggs, aggs["snapshot_ts"].max()))
    assert set(live.tabular.columns) == set(live.profiles.columns) | set(live.aggregates.columns)


def test_an_unknown_user_gets_empty_history_online(sqlite_store: FeatureStoreConfig) -> None:
    live = online_snapshots(sqlite_store, ["nobody"])
    assert as_lists(live.snapshots)["nobody"]["event_text"] == []
    assert pd.isna(live.snapshots["snapshot_ts"].iloc[0])


def test_a_users_version_does_not_depend_on_the_other_users_read(
    sqlite_store: FeatureStoreConfig, two_snapshots: Path
) -> None:
    user = pd.read_parquet(two_snapshots / "users.parquet")["user_id"].iloc[0]
    alone = online_snapshots(sqlite_store, [user])
    with_unknown = online_snapshots(sqlite_store, [user, "nobody"])  # int profile columns -> float
    assert alone.versions()[user] == with_unknown.versions()[user]


def test_materialize_reaches_rows_dated_after_now(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    root = copy_built(built_tiny, tmp_path / "built")
    later = pd.Timedelta(days=3650)  # a clock behind the data (or made-up future dates)
    for name in ("snapshots.parquet", "aggregates.parquet", "profiles.parquet"):
        frame = pd.read_parquet(root / name)
        frame.assign(snapshot_ts=frame["snapshot_ts"] + later).to_parquet(root / name, index=False)
    cfg = FeatureStoreConfig(data=str(root), repo=str(repo_copy))
    end = sync(cfg)
    user = pd.read_parquet(root / "users.parquet")["user_id"].iloc[0]
    assert end > pd.Timestamp.now(tz="UTC") + later / 2
    assert len(as_lists(online_snapshots(cfg, [user]).snapshots)[user]["event_text"]) > 0


def test_a_served_user_gets_the_bag_vector_and_embedding_of_the_offline_path(
    sqlite_store: FeatureStoreConfig, two_snapshots: Path, tiny_model: Path
) -> None:
    from qanchor.infer.engine import Embedder

    users = pd.read_parquet(two_snapshots / "users.parquet")
    ids = users["user_id"].tolist()[:6]
    latest = rows_at(pd.read_parquet(two_snapshots / "snapshots.parquet"),
                     users["cutoff"].iloc[0] + LATER)  # fmt: skip
    latest = latest.set_index("user_id").loc[ids].reset_index()
    live = online_snapshots(sqlite_store, ids)
    # Serving: one request's users from the online store, the bag vectorizer saved with the model.
    served = Embedder.from_dir(tiny_model)
    request = served.request_users(live.snapshots, live.tabular, live.versions())
    # Offline (evaluation, batch refresh): the build's own snapshot rows.
    offline = Embedder.from_dir(tiny_model)
    offline.load_users(latest, live.tabular)
    assert served.model.bag_vectorizer is not None
    for u in ids:
        a = request.table.inputs[request.rows([u])[0]].bag_vec
        b = offline.table.inputs[offline.rows([u])[0]].bag_vec
        np.testing.assert_array_equal(a, b)
    assert np.abs(np.stack([x.bag_vec for x in request.table.inputs])).sum() > 0
    scenario = "cash_loan_default"
    np.testing.assert_allclose(
        served.embed(ids, [scenario], users=request), offline.embed(ids, [scenario]), atol=1e-5
    )


def test_the_declarations_load_once_and_point_at_each_dataset(
    sqlite_store: FeatureStoreConfig, tmp_path: Path
) -> None:
    """Two builds get their own copies of the declared objects, from one import of the repo."""
    from dataclasses import replace

    from feast import FeatureView

    from qanchor.features.declarations import declared, load_objects

    other = copy_built(Path(sqlite_store.data), tmp_path / "other")
    first, second = load_objects(sqlite_store), load_objects(replace(sqlite_store, data=str(other)))
    assert declared(sqlite_store.repo) is declared(sqlite_store.repo)  # imported once
    for objects, data in ((first, Path(sqlite_store.data)), (second, other)):
        views = {o.name: o for o in objects if isinstance(o, FeatureView)}
        src = views["user_event_history"].batch_source
        assert src.path == str(data.resolve() / "snapshots.parquet")
        push = views["user_event_history"].stream_source
        assert push.batch_source is src  # the copy keeps the view's sources shared
