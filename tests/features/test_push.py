"""Stream ingestion: pushed events reach the online store and invalidate cached prefixes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feature_helpers import as_lists, bag_of, rebuilt

from qanchor.features import (
    FeatureStoreConfig,
    online_snapshots,
    prefix_invalidator,
    push_events,
    sync,
)
from qanchor.features.push import FutureEventsError, UnknownUsersError


@pytest.fixture
def fresh_store(built_tiny: Path, repo_copy: Path, tmp_path: Path) -> FeatureStoreConfig:
    """A store of its own over ``built_tiny`` (pushes write to it)."""
    cfg = FeatureStoreConfig(data=str(built_tiny), repo=str(repo_copy), work_dir=str(tmp_path))
    sync(cfg)
    return cfg


def new_events(user_ids: list[str], day: str = "2026-11-0{}") -> pd.DataFrame:
    """Events after every built one, and (events after now + 5 min are refused) in the past."""
    rows = [(u, pd.Timestamp(day.format(i + 1), tz="UTC"), "search", f"searched: bikes {i}", None)
            for i, u in enumerate(user_ids)]  # fmt: skip
    return pd.DataFrame(rows, columns=["user_id", "ts", "source", "text", "value"])


def test_pushed_events_are_served_and_mark_users_stale(fresh_store: FeatureStoreConfig) -> None:
    users = pd.read_parquet(Path(fresh_store.data) / "users.parquet")["user_id"].tolist()[:3]
    before = online_snapshots(fresh_store, users)
    calls: list[set[str]] = []
    events = new_events(users[:2] + users[:1])
    result = push_events(fresh_store, events, on_stale=[calls.append])
    assert result.stale == set(users[:2]) and calls == [set(users[:2])] and result.events == 3
    after = online_snapshots(fresh_store, users)
    got = as_lists(after.snapshots)
    assert {"searched: bikes 0", "searched: bikes 2"} <= set(got[users[0]]["event_text"])
    assert "searched: bikes 1" in got[users[1]]["event_text"]
    assert got[users[2]] == as_lists(before.snapshots)[users[2]]  # untouched user
    assert {u: after.versions()[u] for u in users[:2]} == result.versions
    assert after.versions()[users[2]] == before.versions()[users[2]]
    assert (after.snapshots["snapshot_ts"][:2] > before.snapshots["snapshot_ts"][:2]).all()
    cap = json.loads((Path(fresh_store.data) / "manifest.json").read_text())["config"]
    counts = pd.Series(got[users[0]]["event_source"]).value_counts()
    assert counts.max() <= cap["max_events_per_source"]  # the build's caps still hold
    # The same events again (a stream redelivers): nothing changes, nobody is stale.
    again = push_events(fresh_store, events, on_stale=[calls.append])
    assert again.stale == set() and calls == [set(users[:2])]
    assert online_snapshots(fresh_store, users).versions() == after.versions()


def test_a_push_serves_what_a_build_with_the_new_events_writes(
    fresh_store: FeatureStoreConfig, tiny_events: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    # The future period's events arrive on the stream: after the push, the online rows (recent
    # events and whole-history bag) are those of a build over history + these events.
    root = Path(fresh_store.data)
    history, future = tiny_events
    users = sorted(future["user_id"].unique())[:6]
    first = future[future["user_id"] == users[0]]
    pushed = pd.concat([future[future["user_id"].isin(users)], first.assign(user_id="newcomer")])
    before = as_lists(online_snapshots(fresh_store, users).snapshots)
    result = push_events(fresh_store, pushed, create=True)  # "newcomer" is new
    assert result.stale == {*users, "newcomer"}
    served = online_snapshots(fresh_store, [*users, "newcomer"])
    build = json.loads((root / "manifest.json").read_text())["config"]
    want = rebuilt(pd.concat([history, pushed]), [*users, "newcomer"], build)
    assert as_lists(served.snapshots) == as_lists(want)
    # Not vacuous: pushed texts the bags already held were counted on top of the old counts.
    after = as_lists(served.snapshots)
    grown = [
        k for u in users for k, n in bag_of(after[u]).items() if n > bag_of(before[u]).get(k, 0) > 0
    ]
    assert grown
    # The stream redelivers the whole batch: nothing changes, nobody is stale, no row rewritten.
    assert push_events(fresh_store, pushed).stale == set()
    again = online_snapshots(fresh_store, [*users, "newcomer"]).snapshots
    assert as_lists(again) == after
    assert again["snapshot_ts"].tolist() == served.snapshots["snapshot_ts"].tolist()


def test_an_old_event_redelivered_after_leaving_the_window_is_not_counted_again(
    fresh_store: FeatureStoreConfig, tiny_events: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    root = Path(fresh_store.data)
    history = tiny_events[0]
    cap = json.loads((root / "manifest.json").read_text())["config"]["max_events_per_source"]
    sizes = history.groupby(["user_id", "source"]).size()
    user, source = sizes[sizes > cap].index[0]  # a full window: older events fell out of it
    old = history[(history["user_id"] == user) & (history["source"] == source)].head(1)
    before = online_snapshots(fresh_store, [user])
    served = as_lists(before.snapshots)[user]
    assert (source, old["text"].iloc[0]) in bag_of(served)  # the build counted it in the bag
    window = [
        t for s, t in zip(served["event_source"], served["event_ts"], strict=True) if s == source
    ]
    assert old["ts"].iloc[0].tz_localize(None) < min(window)  # ... and it left the window
    assert push_events(fresh_store, old).stale == set()
    assert as_lists(online_snapshots(fresh_store, [user]).snapshots) == as_lists(before.snapshots)


def test_push_of_a_new_user_starts_its_history(fresh_store: FeatureStoreConfig) -> None:
    with pytest.raises(UnknownUsersError, match=r"unknown user\(s\) \['newcomer'\].*create=True"):
        push_events(fresh_store, new_events(["newcomer"]))
    assert online_snapshots(fresh_store, ["newcomer"]).snapshots["snapshot_ts"].isna().all()
    result = push_events(fresh_store, new_events(["newcomer"]).drop(columns="value"), create=True)
    assert result.stale == {"newcomer"}
    got = as_lists(online_snapshots(fresh_store, ["newcomer"]).snapshots)["newcomer"]
    assert got["event_text"] == ["searched: bikes 0"] and got["event_value"] == [None]


def test_a_push_brings_the_users_activity_aggregates_forward(
    fresh_store: FeatureStoreConfig,
) -> None:
    users = sorted(pd.read_parquet(Path(fresh_store.data) / "users.parquet")["user_id"])[:1]
    before = online_snapshots(fresh_store, users)
    agg0 = before.aggregates.set_index("user_id").loc[users[0]].astype(float)  # None -> NaN
    ev = new_events(users).assign(value=[12.5])
    push_events(fresh_store, ev)
    after = online_snapshots(fresh_store, users)
    agg1 = after.aggregates.set_index("user_id").loc[users[0]].astype(float)
    assert agg1["search__count"] == agg0["search__count"] + 1
    assert agg1["total__count"] == agg0["total__count"] + 1
    assert agg1["search__value_sum"] == np.nansum([agg0["search__value_sum"], 12.5])
    row_time = pd.to_datetime(after.snapshots["snapshot_ts"].iloc[0], utc=True)
    since = (row_time - ev["ts"].iloc[0]) / pd.Timedelta(days=1)
    assert agg1["search__days_since_last"] == pytest.approx(since)
    assert agg1["total__days_since_last"] == pytest.approx(since)
    # The other sources' recency counts from the new row time too.
    other = [
        c
        for c in agg0.index
        if c.endswith("__days_since_last") and not c.startswith(("search", "total"))
    ]
    shift = (
        row_time - pd.to_datetime(before.snapshots["snapshot_ts"].iloc[0], utc=True)
    ) / pd.Timedelta(days=1)
    for c in other:
        if pd.notna(agg0[c]):
            assert agg1[c] == pytest.approx(agg0[c] + shift), c


def test_events_dated_in_the_future_are_refused_and_nothing_is_written(
    fresh_store: FeatureStoreConfig,
) -> None:
    users = sorted(pd.read_parquet(Path(fresh_store.data) / "users.parquet")["user_id"])[:2]
    before = as_lists(online_snapshots(fresh_store, users).snapshots)
    ev = new_events(users)
    ev.loc[ev.index[-1], "ts"] = pd.Timestamp("2200-01-01", tz="UTC")
    with pytest.raises(FutureEventsError, match=r"1 event\(s\) dated after now"):
        push_events(fresh_store, ev)
    assert as_lists(online_snapshots(fresh_store, users).snapshots) == before
    # Within the allowed skew of a clock a little ahead: accepted.
    ev.loc[ev.index[-1], "ts"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)
    assert push_events(fresh_store, ev).stale == set(users)


def test_push_invalidates_the_embedders_prefix_cache(
    fresh_store: FeatureStoreConfig, tiny_model: Path
) -> None:
    from qanchor.infer.engine import Embedder

    users = pd.read_parquet(Path(fresh_store.data) / "users.parquet")["user_id"].tolist()[:4]
    emb = Embedder.from_dir(tiny_model)
    live = online_snapshots(fresh_store, users)
    emb.load_users(live.snapshots, live.profiles)
    keys = [emb.cache_key(r) for r in emb.rows(users)]
    query = ["Will this user buy a bike?"]
    first = emb.embed(users, query)
    assert all(k in emb.cache for k in keys)
    result = push_events(
        fresh_store, new_events(users[:1]), on_stale=[prefix_invalidator(emb.cache)]
    )
    assert result.stale == {users[0]}
    assert keys[0] not in emb.cache and all(k in emb.cache for k in keys[1:])
    live = online_snapshots(fresh_store, users)  # serving reloads the stale users' features
    emb.load_users(live.snapshots, live.profiles)
    new_keys = [emb.cache_key(r) for r in emb.rows(users)]
    assert new_keys[0] != keys[0] and new_keys[1:] == keys[1:]
    hits = emb.cache.hits
    second = emb.embed(users, query)
    assert emb.cache.hits == hits + 3  # the others are still served from the cache
    assert np.abs(first[0] - second[0]).max() > 1e-4  # the new event reached the embedding
    np.testing.assert_allclose(first[1:], second[1:], atol=1e-6)
