"""The training chain reads user snapshots through the feature store; the CLI wrappers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feature_helpers import as_lists, assert_profiles_equal
from feature_helpers import copy_built as copy

from qanchor.cli import main
from qanchor.data.snapshots import BAG_COLUMNS
from qanchor.errors import QAnchorError
from qanchor.features import (
    FeatureStoreConfig,
    apply,
    historical_snapshots,
    online_snapshots,
    store,
)
from qanchor.model.data import BuiltData, UserTable, fit_bag_vectorizer
from qanchor.model.profile import ProfileFeaturizer


def test_built_data_from_the_store_equals_the_parquet(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    root = copy(built_tiny, tmp_path / "built")
    assert main(["features", "apply", "--data", str(root), "--repo", str(repo_copy)]) == 0
    parquet = BuiltData.load(root)
    feast = BuiltData.load(root, feature_repo=repo_copy)
    assert as_lists(feast.snapshots) == as_lists(parquet.snapshots)
    assert_profiles_equal(feast.profiles, parquet.profiles)
    # The point-in-time read was saved once; the next stage reads the same rows from it.
    (saved,) = (root / "feature_store" / "saved").iterdir()
    again = BuiltData.load(root, feature_repo=repo_copy)
    assert as_lists(again.snapshots) == as_lists(feast.snapshots)
    assert_profiles_equal(again.profiles, feast.profiles)
    assert [p.name for p in (root / "feature_store" / "saved").iterdir()] == [saved.name]
    # What a whole-history model with a bag channel reads: pretraining fits the bag vectorizer
    # on the snapshots it loaded (here through Feast), then every user's inputs.
    fz = ProfileFeaturizer.fit(parquet.profiles)
    sources, train = parquet.sources, set(parquet.split_users("train"))
    vec = fit_bag_vectorizer(parquet.snapshots, sources, train, dim=4, seed=0)
    vec_feast = fit_bag_vectorizer(feast.snapshots, sources, train, dim=4, seed=0)
    assert vec.terms == vec_feast.terms and (vec.idf == vec_feast.idf).all()
    tables = [
        UserTable.from_snapshots(d.snapshots, sources, 3, None, d.profiles, fz, True, vec)
        for d in (parquet, feast)
    ]
    a, b = tables
    assert a.user_ids == b.user_ids and a.texts == b.texts
    for x, y in zip(a.inputs, b.inputs, strict=True):
        assert x.events == y.events and (x.profile == y.profile).all()
        for p, q in zip(x.bag, y.bag, strict=True):
            np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(x.bag_vec, y.bag_vec)
    # Not vacuous: the bags hold more than the capped recent events.
    assert sum(len(x.bag[1]) for x in a.inputs) > sum(len(t) for x in a.inputs for _, t in x.events)
    assert np.abs(np.stack([x.bag_vec for x in a.inputs])).sum() > 0


def test_a_sample_of_users_reads_their_rows_only(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    """Evaluation loads its sample, not the build: the same rows as the whole, filtered."""
    root = copy(built_tiny, tmp_path / "built")
    assert main(["features", "apply", "--data", str(root), "--repo", str(repo_copy)]) == 0
    whole = BuiltData.load(root)
    sample = sorted(whole.users["user_id"])[::3]
    for repo in (None, repo_copy):
        part = BuiltData.load(root, feature_repo=repo, users=sample)
        assert sorted(part.users["user_id"]) == sample
        assert sorted(part.snapshots["user_id"]) == sample
        kept = whole.snapshots[whole.snapshots["user_id"].isin(sample)]
        assert as_lists(part.snapshots) == as_lists(kept)
        assert sorted(part.profiles["user_id"]) == sample
        assert_profiles_equal(part.profiles, whole.profiles)
        assert set(part.pairs["user_id"]) <= set(sample) and len(part.pairs) > 0
    # One point-in-time join whatever the subset: the sample's read saved every user's rows,
    # and another sample (tuning's users beside evaluation's) is read from that copy.
    (saved,) = (root / "feature_store" / "saved").iterdir()
    other = sorted(whole.users["user_id"])[1::2]
    part = BuiltData.load(root, feature_repo=repo_copy, users=other)
    assert [p.name for p in (root / "feature_store" / "saved").iterdir()] == [saved.name]
    assert as_lists(part.snapshots) == as_lists(
        whole.snapshots[whole.snapshots["user_id"].isin(other)]
    )
    assert sorted(part.profiles["user_id"]) == other
    # Every user asked for: the whole build, read as without a sample.
    every = BuiltData.load(root, users=list(whole.users["user_id"]))
    assert as_lists(every.snapshots) == as_lists(whole.snapshots)


def test_reading_an_unapplied_store_says_what_to_run(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    with pytest.raises(QAnchorError, match="qanchor features apply"):
        BuiltData.load(copy(built_tiny, tmp_path / "built"), feature_repo=repo_copy)


def test_applying_a_build_without_the_bag_says_to_rebuild(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    root = copy(built_tiny, tmp_path / "built")
    snaps = pd.read_parquet(root / "snapshots.parquet")
    snaps.drop(columns=list(BAG_COLUMNS)).to_parquet(root / "snapshots.parquet", index=False)
    with pytest.raises(QAnchorError, match=r"lacks the columns \['bag_count'.*qanchor data build"):
        apply(FeatureStoreConfig(data=str(root), repo=str(repo_copy)))


def test_a_dataset_without_profiles_serves_events_and_aggregates(
    built_tiny: Path, repo_copy: Path, tmp_path: Path
) -> None:
    root = copy(built_tiny, tmp_path / "built")
    (root / "profiles.parquet").unlink()
    cfg = FeatureStoreConfig(data=str(root), repo=str(repo_copy))
    assert "user_profile" not in apply(cfg)
    assert {
        p.name for p in store(cfg).get_feature_service("qanchor_serving").feature_view_projections
    } == {"user_event_history", "user_activity"}
    users = pd.read_parquet(root / "users.parquet")
    got = historical_snapshots(cfg, users[["user_id", "cutoff"]])
    assert got.profiles is None and got.aggregates is not None and len(got.snapshots) == len(users)


def test_cli_apply_materialize_push(
    built_tiny: Path, repo_copy: Path, tmp_path: Path, capsys
) -> None:
    root = copy(built_tiny, tmp_path / "built")
    common = ["--data", str(root), "--repo", str(repo_copy), "--work-dir", str(tmp_path / "fs")]
    assert main(["features", "apply", *common]) == 0
    assert main(["features", "materialize", *common, "--end", "2030-01-01"]) == 0
    user = pd.read_parquet(root / "users.parquet")["user_id"].iloc[0]
    events = pd.DataFrame({"user_id": [user], "ts": [pd.Timestamp("2026-11-01", tz="UTC")],
                           "source": ["bill"], "text": ["paid 9.99 at BikeShop"], "value": [9.99]})  # fmt: skip
    events.to_parquet(tmp_path / "new.parquet")
    assert main(["features", "push", *common, "--events", str(tmp_path / "new.parquet")]) == 0
    out = capsys.readouterr().out
    assert "materialised up to 2030-01-01T00:00:00+00:00 (sqlite)" in out
    assert f"pushed 1 events; 1 users stale: ['{user}']" in out
    cfg = FeatureStoreConfig(data=str(root), repo=str(repo_copy), work_dir=str(tmp_path / "fs"))
    assert (
        "paid 9.99 at BikeShop"
        in as_lists(online_snapshots(cfg, [user]).snapshots)[user]["event_text"]
    )
