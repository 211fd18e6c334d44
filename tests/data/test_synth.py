"""Tests of the synthetic data generator: contract shape, realism properties, determinism, shift."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from qanchor.config import resolve
from qanchor.data.synth import SynthConfig, synthesize, write_dataset
from qanchor.data.synth_scenarios import SCENARIOS, scenario_scores
from qanchor.errors import QAnchorError

START = pd.Timestamp("2026-01-01", tz="UTC")
NAMED_SOURCES = {"bill", "miniprogram", "spm", "app", "search"}
SHIFT = "2026-03-01"
NEW_ITEMS = r"MindMate|VoltCharge|CryptoNest|LiveBuy Studio|ai assistant|crypto|ev charging"


@pytest.fixture(scope="module")
def data():
    # 2000 users: enough for stable label statistics, still well under a second to generate.
    return synthesize(SynthConfig(users=2000, seed=0))


@pytest.fixture(scope="module")
def shifted():
    return synthesize(SynthConfig(users=2000, seed=0, shift_after=SHIFT))


def _label_matrix(data) -> np.ndarray:
    wide = data.labels.pivot(index="user_id", columns="scenario", values="label")
    return wide.loc[data.traits["user_id"], [s.name for s in SCENARIOS]].to_numpy()


def test_events_follow_the_contract(data):
    ev = data.events
    assert list(ev.columns) == ["user_id", "ts", "source", "text", "value"]
    for column in ("user_id", "source", "text"):
        assert pd.api.types.is_string_dtype(ev[column]), column
    assert isinstance(ev["ts"].dtype, pd.DatetimeTZDtype) and str(ev["ts"].dt.tz) == "UTC"
    assert ev["value"].dtype == np.float64
    assert ev["user_id"].str.fullmatch(r"u\d{6}").all()
    assert ev["text"].str.len().gt(5).all()
    assert set(ev["user_id"]) == set(data.profiles["user_id"])
    # Clean data: sorted, and no two events of one source at the same second (no duplicates).
    assert not ev.duplicated(["user_id", "ts", "source"]).any()
    assert (
        ev["user_id"] + ev["ts"].astype("int64").astype(str).str.zfill(20)
    ).is_monotonic_increasing


def test_labels_and_profiles_follow_the_contract(data):
    lab = data.labels
    assert list(lab.columns) == ["user_id", "scenario", "label"]
    assert lab["label"].dtype == np.int64 and set(lab["label"].unique()) <= {0, 1}
    # Every user has exactly one label per scenario.
    assert len(lab) == 2000 * len(SCENARIOS)
    assert not lab.duplicated(["user_id", "scenario"]).any()
    prof = data.profiles
    assert prof["user_id"].is_unique and len(prof) == 2000
    assert prof.shape[1] >= 6
    assert prof.isna().any().sum() >= 2, "real profiles have gaps"


def test_sources_look_like_the_papers(data):
    ev = data.events
    assert set(ev["source"]) >= NAMED_SOURCES
    by = {s: ev[ev["source"] == s] for s in NAMED_SOURCES}
    assert by["bill"]["text"].str.contains(r"\d+\.\d\d").all()
    assert (by["bill"]["value"] > 0).all()
    assert by["spm"]["text"].str.contains(" > ").all()
    assert by["search"]["text"].str.contains("search").all() and by["search"]["value"].isna().all()
    assert by["miniprogram"]["text"].str.contains("mini-program").all()
    apps = by["app"].groupby("user_id").size()
    assert apps.between(10, 40 + 3).all()  # 10-40 installs (+ a few only after a shift)
    assert by["app"]["value"].isna().all()
    # Installed apps are distinct per user.
    names = by["app"]["text"].str.extract(r": (.*) \(")[0]
    assert not pd.DataFrame({"u": by["app"]["user_id"], "a": names}).duplicated().any()


def test_scenarios_cover_three_groups(data):
    sc = data.scenarios
    names = [s["name"] for s in sc]
    assert len(sc) >= 10 and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert all(set(s) == {"name", "query", "description", "group"} for s in sc)
    assert all(s["query"].strip().endswith("?") for s in sc)
    groups = pd.Series([s["group"] for s in sc]).value_counts()
    assert set(groups.index) == {"engagement", "risk", "marketing"} and groups.min() >= 3
    assert set(data.labels["scenario"]) == set(names)


def test_same_seed_same_data_other_seed_other_data():
    a = synthesize(SynthConfig(users=150, seed=5))
    b = synthesize(SynthConfig(users=150, seed=5))
    c = synthesize(SynthConfig(users=150, seed=6))
    for field in ("events", "profiles", "labels", "traits"):
        pd.testing.assert_frame_equal(getattr(a, field), getattr(b, field))
    assert a.scenarios == b.scenarios
    assert not a.events["text"].equals(c.events["text"]) and len(a.events) != len(c.events)


def test_activity_is_heavy_tailed(data):
    per_user = data.events.groupby("user_id").size()
    assert 80 <= per_user.mean() <= 180  # ~100-150 events per user over 120 days
    streams = data.events[data.events["source"] != "app"].groupby("user_id").size()
    assert streams.max() / streams.median() > 10
    assert per_user.median() < per_user.mean()  # right-skewed: many light users, a few heavy


def test_timestamps_stay_in_the_window(data):
    end = START + pd.Timedelta(days=90 + 30)
    assert data.events["ts"].min() >= START and data.events["ts"].max() < end
    # Both the history and the future period hold events (the builder cuts at start + 90 days).
    assert (data.events["ts"] >= START + pd.Timedelta(days=90)).mean() > 0.1


def test_label_rates_are_sane(data):
    rates = data.labels.groupby("scenario")["label"].mean()
    assert rates.between(0.03, 0.55).all(), rates
    assert rates.max() - rates.min() > 0.15  # base rates differ between scenarios


def test_labels_follow_their_driving_traits(data):
    labels = _label_matrix(data)
    scores = scenario_scores(data.traits)
    for k, sc in enumerate(SCENARIOS):
        assert np.corrcoef(labels[:, k], scores[:, k])[0, 1] > 0.25, sc.name
        column, weight = max(sc.drivers.items(), key=lambda kv: abs(kv[1]))
        signed = np.sign(weight) * data.traits[column].to_numpy()
        assert np.corrcoef(labels[:, k], signed)[0, 1] > 0.1, (sc.name, column)


def test_scenarios_are_different_tasks(data):
    corr = np.corrcoef(_label_matrix(data).T)
    np.fill_diagonal(corr, 0.0)
    assert np.abs(corr).max() < 0.6
    assert len({frozenset(s.drivers) for s in SCENARIOS}) == len(SCENARIOS)


def test_time_carries_signal(data):
    ev, tr = data.events, data.traits.set_index("user_id")
    day = (ev["ts"] - START).dt.days
    first = ev[day < 30].groupby("user_id").size().reindex(tr.index, fill_value=0)
    last = ev[(day >= 60) & (day < 90)].groupby("user_id").size().reindex(tr.index, fill_value=0)
    decliners = tr["activity_trend"] < -1.2
    ratio = (last + 1) / (first + 1)
    assert ratio[decliners].median() < 0.6 * ratio[~decliners].median()
    # Future behaviour follows the same traits: churn positives fade in the future period.
    future = ev[day >= 90].groupby("user_id").size().reindex(tr.index, fill_value=0)
    churn = data.labels[data.labels["scenario"] == "churn_next_month"].set_index("user_id")["label"]
    per_day = (future / 30) / ((first + last) / 60 + 0.1)
    assert per_day[churn.reindex(tr.index) == 1].median() < 0.7 * per_day[churn == 0].median()
    # Travel content surges after a planned trip's onset (recency matters, not just totals).
    travel = ev["text"].str.contains(r"flight|hotel|airline|travel|visa", case=False)
    onset = ev["user_id"].map(tr["trip_onset_day"])
    planners = onset.notna() & (day < 90)
    after = travel[planners & (day >= onset)].mean()
    before = travel[planners & (day < onset)].mean()
    assert after > 1.5 * before


def test_shift_changes_behaviour_after_its_date(data, shifted):
    def stats(d):
        ev = d.events
        post = ev["ts"] >= pd.Timestamp(SHIFT, tz="UTC")
        bill = ev["source"] == "bill"
        return {
            "amount": ev.loc[bill & post, "value"].median()
            / ev.loc[bill & ~post, "value"].median(),
            "mini": (ev.loc[post, "source"] == "miniprogram").mean(),
            "new_pre": ev.loc[~post, "text"].str.contains(NEW_ITEMS).mean(),
            "new_post": ev.loc[post, "text"].str.contains(NEW_ITEMS).mean(),
        }

    base, drift = stats(data), stats(shifted)
    assert drift["amount"] > 1.15 * base["amount"]
    assert drift["mini"] > base["mini"] + 0.03
    assert drift["new_pre"] == 0 and drift["new_post"] > 0.05
    assert base["new_pre"] == 0 and base["new_post"] == 0  # no shift: no new items at all
    # The shift changes behaviour, not who the users are.
    pd.testing.assert_frame_equal(data.labels, shifted.labels)
    pd.testing.assert_frame_equal(data.traits, shifted.traits)


def test_write_dataset_round_trips(tmp_path):
    data = synthesize(SynthConfig(users=120, seed=2))
    out = write_dataset(data, tmp_path / "ds")
    for name in ("events.parquet", "profiles.parquet", "labels.parquet", "scenarios.yaml"):
        assert (out / name).is_file(), name
    assert (out / "_truth" / "traits.parquet").is_file()
    events = pd.read_parquet(out / "events.parquet")
    pd.testing.assert_frame_equal(events, data.events, check_dtype=False)
    assert str(events["ts"].dt.tz) == "UTC"
    labels = pd.read_parquet(out / "labels.parquet")
    assert len(labels) == len(data.labels) and "split" not in labels.columns
    assert yaml.safe_load((out / "scenarios.yaml").read_text()) == data.scenarios
    from qanchor.data.contract import read_scenarios

    assert [s.name for s in read_scenarios(out / "scenarios.yaml")] == [s.name for s in SCENARIOS]


def test_config_has_help_presets_and_checks():
    assert all(f.metadata.get("help") for f in dataclasses.fields(SynthConfig))
    assert resolve(SynthConfig, preset="tiny").users == 200
    with pytest.raises(QAnchorError, match="users"):
        synthesize(SynthConfig(users=0))
    with pytest.raises(QAnchorError, match="ISO date"):
        synthesize(SynthConfig(users=10, shift_after="not a date"))
