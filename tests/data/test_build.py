"""The dataset builder on small datasets with sources the synthetic generator does not use."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qanchor.config import resolve
from qanchor.data.build import (
    OUTPUT_FILES,
    BuildConfig,
    build_dataset,
    cut_events,
    resolve_cutoff,
)
from qanchor.data.loader import load_dataset

CFG = BuildConfig(future_days=10, max_events_per_source=3)


@pytest.fixture
def built(toy_dataset: Path, tmp_path: Path) -> Path:
    return build_dataset(toy_dataset, tmp_path / "built", CFG)


def read(built: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(built / name)


def cut(built: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The build's history and future events (it writes none): its input cut again."""
    cutoff = read(built, "users.parquet")["cutoff"].iloc[0]
    events = load_dataset(json.loads((built / "manifest.json").read_text())["input"]).events
    return cut_events(events, cutoff, CFG.future_days, CFG.history_days)


def test_writes_every_output_and_a_consistent_manifest(built: Path) -> None:
    for name in OUTPUT_FILES:
        assert (built / name).is_file(), name
    manifest = json.loads((built / "manifest.json").read_text())
    for name in OUTPUT_FILES:
        assert manifest["rows"][name] == len(read(built, name))
        assert name in manifest["files"]
    assert manifest["sources"] == ["call", "shop", "web"]
    assert manifest["schema_version"] == 1
    assert manifest["config"]["max_events_per_source"] == 3
    report = (built / "report.md").read_text()
    for heading in (
        "Events per source",
        "Users per split",
        "Label rates per scenario",
        "Quarantined rows",
    ):
        assert heading in report


def test_history_and_future_are_cut_at_the_cutoff(built: Path) -> None:
    cutoff = read(built, "users.parquet")["cutoff"].iloc[0]
    hist, fut = cut(built)
    assert len(hist) and len(fut) and hist["ts"].max() < cutoff <= fut["ts"].min()
    users = read(built, "users.parquet")  # the counts a build keeps of the events it cut
    assert (users["n_history"].sum(), users["n_future"].sum()) == (len(hist), len(fut))
    assert fut["ts"].max() < cutoff + pd.Timedelta(days=CFG.future_days)
    snaps = read(built, "snapshots.parquet")
    assert all(ts < cutoff.tz_localize(None) for lst in snaps["event_ts"] for ts in lst)


def test_explicit_cutoff_is_honoured(toy_dataset: Path) -> None:
    ds = load_dataset(toy_dataset)
    cfg = BuildConfig(cutoff="2026-03-20")
    assert resolve_cutoff(ds.events, cfg) == pd.Timestamp("2026-03-20", tz="UTC")


def test_snapshots_keep_the_most_recent_events_per_source_in_order(built: Path) -> None:
    (hist, _), snaps = cut(built), read(built, "snapshots.parquet")
    for row in snaps.itertuples():
        srcs = list(row.event_source)
        assert srcs == sorted(srcs)
        for src in set(srcs):
            ts = [t for s, t in zip(srcs, row.event_ts, strict=True) if s == src]
            assert ts == sorted(ts) and len(ts) <= CFG.max_events_per_source
            mine = hist[(hist.user_id == row.user_id) & (hist.source == src)]
            expected = mine["ts"].sort_values().tail(CFG.max_events_per_source).dt.tz_localize(None)
            assert [pd.Timestamp(t) for t in ts] == list(expected)


def test_the_bag_counts_distinct_texts_most_frequent_then_most_recent() -> None:
    from qanchor.data.snapshots import bag_lists

    rows = [("u1", "2026-01-01 10:00:00.7", "a", "old"), ("u1", "2026-01-02", "a", "new"),
            ("u1", "2026-01-03", "a", "twice"), ("u1", "2026-01-04", "a", "twice"),
            ("u1", "2026-01-05", "b", "tie-b"), ("u1", "2026-01-05", "b", "tie-a")]  # fmt: skip
    hist = pd.DataFrame(rows, columns=["user_id", "ts", "source", "text"])
    hist["ts"] = pd.to_datetime(hist["ts"], utc=True, format="ISO8601")
    users = pd.Index(["u0", "u1"], name="user_id")  # u0 has no history
    bag = bag_lists(hist, users, max_texts=2).set_index("user_id")
    # Per source: count desc, last time desc, text; at most two texts ("old" is dropped).
    assert list(bag.loc["u1", "bag_source"]) == ["a", "a", "b", "b"]
    assert list(bag.loc["u1", "bag_text"]) == ["twice", "new", "tie-a", "tie-b"]
    assert list(bag.loc["u1", "bag_count"]) == [2, 1, 1, 1]
    assert bag.loc["u1", "bag_count"].dtype == "int64"
    assert bag.loc["u1", "bag_last_ts"][0] == pd.Timestamp("2026-01-04").to_datetime64()
    assert all(len(bag.loc["u0", c]) == 0 for c in bag.columns)
    # Last times are whole seconds (the online store's resolution): a push orders alike.
    kept = bag_lists(hist, users, max_texts=3).set_index("user_id").loc["u1", "bag_last_ts"]
    assert pd.Timestamp(kept[2]) == pd.Timestamp("2026-01-01 10:00:00")


def test_aggregates_count_history_events(built: Path) -> None:
    (hist, _), agg = cut(built), read(built, "aggregates.parquet").set_index("user_id")
    counts = hist.groupby(["user_id", "source"]).size()
    for (uid, src), n in counts.items():
        assert agg.loc[uid, f"{src}__count"] == n
    assert (
        agg["total__count"] == hist.groupby("user_id").size().reindex(agg.index).fillna(0)
    ).all()


def test_splits_are_deterministic_and_partition_users(toy_dataset: Path, tmp_path: Path) -> None:
    a = build_dataset(toy_dataset, tmp_path / "a", CFG)
    b = build_dataset(toy_dataset, tmp_path / "b", CFG)
    ua, ub = read(a, "users.parquet"), read(b, "users.parquet")
    pd.testing.assert_frame_equal(ua, ub)
    assert set(ua["split"]) <= {"train", "val", "test"} and ua["user_id"].is_unique
    labels = read(a, "labels.parquet").merge(ua, on="user_id", suffixes=("", "_u"))
    assert (labels["split"] == labels["split_u"]).all()
    hashes = [json.loads((d / "manifest.json").read_text())["content_hash"] for d in (a, b)]
    assert hashes[0] == hashes[1]


def test_a_given_split_column_is_honoured(toy_dataset: Path, tmp_path: Path) -> None:
    labels = pd.read_parquet(toy_dataset / "labels.parquet")
    labels["split"] = labels["user_id"].map(lambda u: "test" if u.endswith(("1", "2")) else "train")
    labels.to_parquet(toy_dataset / "labels.parquet")
    users = read(build_dataset(toy_dataset, tmp_path / "b", CFG), "users.parquet")
    expected = users["user_id"].map(lambda u: "test" if u.endswith(("1", "2")) else "train")
    assert (users["split"] == expected).all()


def test_pairs_are_grounded_in_the_users_own_data(built: Path) -> None:
    pairs, (_, fut) = read(built, "pairs.parquet"), cut(built)
    users = read(built, "users.parquet")
    future = pairs[pairs["kind"] == "future"]
    assert set(future["user_id"]) == set(users["user_id"])
    assert (future["query"] == "What is this user most likely to do next period?").all()
    for row in future.itertuples():
        active = set(fut.loc[fut.user_id == row.user_id, "source"])
        mentioned = {s for s in ("shop", "web", "call") if f"{s}:" in row.answer}
        assert mentioned == active, row.answer
    uqa = pairs[pairs["kind"] == "uqa"]
    assert (uqa.groupby("user_id").size() <= 4).all() and uqa["topic"].nunique() >= 4
    assert (pairs["answer"].str.len() > 0).all()


def test_qa_pairs_and_quarantine_flow_into_the_build(toy_dataset: Path, tmp_path: Path) -> None:
    qa = pd.DataFrame(
        {"user_id": ["user001", "user002"], "query": ["Hobby?", "Job?"], "answer": ["Chess.", ""]}
    )
    qa.to_parquet(toy_dataset / "qa.parquet")
    ev = pd.read_parquet(toy_dataset / "events.parquet")
    ev = pd.concat([ev, ev.head(2)], ignore_index=True)  # two exact duplicates
    ev.loc[len(ev)] = ["ghost", pd.Timestamp("2026-03-02", tz="UTC"), "web", "no label", 1.0]
    ev.to_parquet(toy_dataset / "events.parquet")
    out = build_dataset(toy_dataset, tmp_path / "q", CFG)
    pairs = read(out, "pairs.parquet")
    assert pairs[pairs.kind == "qa"][["user_id", "answer"]].values.tolist() == [
        ["user001", "Chess."]
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quarantined"]["events.parquet"] == 3
    assert manifest["quarantined"]["qa.parquet"] == 1
    q = pd.read_parquet(out / "quarantine" / "events.parquet")
    assert sorted(q["reason"]) == ["duplicate event", "duplicate event", "user has no label"]
    assert "duplicate event" in (out / "report.md").read_text()


def test_works_without_profiles(toy_dataset: Path, tmp_path: Path) -> None:
    (toy_dataset / "profiles.parquet").unlink()
    out = build_dataset(toy_dataset, tmp_path / "np", CFG)
    assert not (out / "profiles.parquet").exists()
    assert not (read(out, "pairs.parquet")["topic"] == "profile").any()


def test_failed_build_keeps_the_last_good_output(toy_dataset: Path, tmp_path: Path) -> None:
    out = build_dataset(toy_dataset, tmp_path / "keep", CFG)
    before = (out / "manifest.json").read_text()
    (toy_dataset / "scenarios.yaml").write_text(yaml.safe_dump([{"name": "buys"}]))
    with pytest.raises(Exception, match="query"):
        build_dataset(toy_dataset, out, CFG)
    assert (out / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".keep")] == []


def test_presets_and_overrides() -> None:
    assert resolve(BuildConfig, "tiny").max_events_per_source == 8
    paper = resolve(BuildConfig, "paper", overrides={"seed": "3"})
    assert paper.source_caps["app"] == 10 and paper.seed == 3


def test_a_build_takes_the_caps_of_a_models_feature_spec(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    from qanchor.features.spec import FeatureSpec

    trained = FeatureSpec.from_model(tiny_model)
    cfg = BuildConfig(max_events_per_source=trained.max_events_per_source + 3, max_bag_texts=5,
                      feature_spec_from=str(tiny_model))  # fmt: skip
    out = build_dataset(built_tiny.parent / "raw", tmp_path / "serving", cfg)
    assert FeatureSpec.from_build(out) == trained


def test_tables_do_not_depend_on_how_many_users_are_taken_at_once(
    built_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build makes pairs, bags and aggregates ``USER_CHUNK`` users at a time to bound its
    memory; chunks of 7 of the 80 users give the same tables as all users at once (the trend's
    window start and the count bins stay the population's)."""
    from qanchor.data import build_tables

    raw = built_tiny.parent / "raw"
    monkeypatch.setattr(build_tables, "USER_CHUNK", 7)
    chunked = build_dataset(raw, tmp_path / "chunked", resolve(BuildConfig, "tiny"))
    for table in ("pairs", "snapshots", "aggregates"):
        pd.testing.assert_frame_equal(
            read(chunked, f"{table}.parquet"), read(built_tiny, f"{table}.parquet")
        )
    # Not vacuous: the pairs speak of activity trends, which a chunk's own window would shift.
    assert read(built_tiny, "pairs.parquet")["kind"].nunique() > 1
