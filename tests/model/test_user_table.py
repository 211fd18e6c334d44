"""UserTable is built block by block of users; the blocks must not show in the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qanchor.model.data import BuiltData, UserTable, fit_bag_vectorizer
from qanchor.model.profile import ProfileFeaturizer
from qanchor.model.user_table import snapshot_counts


def test_a_table_built_in_blocks_equals_one_built_at_once(built_tiny: Path) -> None:
    data = BuiltData.load(built_tiny)
    sources, train = data.sources, set(data.split_users("train"))
    vec = fit_bag_vectorizer(data.snapshots, sources, train, dim=4, seed=0)
    fz = ProfileFeaturizer.fit(data.profiles)
    args = (data.snapshots, sources, 3, None, data.profiles, fz, True, vec, "round")
    whole = UserTable.from_snapshots(*args, block=len(data.snapshots))
    blocks = UserTable.from_snapshots(*args, block=7)
    assert len(data.snapshots) > 2 * 7  # several blocks, the last one partial
    assert blocks.user_ids == whole.user_ids and blocks.texts == whole.texts
    for x, y in zip(blocks.inputs, whole.inputs, strict=True):
        assert x.events == y.events
        np.testing.assert_array_equal(x.profile, y.profile)
        for p, q in zip(x.bag, y.bag, strict=True):
            np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(x.bag_vec, y.bag_vec)
        for p, q in zip(x.bag_tfidf, y.bag_tfidf, strict=True):
            np.testing.assert_array_equal(p, q)
    # Not vacuous: the users hold events and whole-history bags to map.
    assert all(x.events and len(x.bag[1]) for x in whole.inputs)


def test_no_users_give_an_empty_table(built_tiny: Path) -> None:
    data = BuiltData.load(built_tiny)
    table = UserTable.from_snapshots(data.snapshots.iloc[:0], data.sources, 3, block=4)
    assert (table.user_ids, table.texts, table.inputs) == ([], [], [])


def test_bag_counts_read_in_blocks_equal_one_read(built_tiny: Path) -> None:
    data = BuiltData.load(built_tiny)
    whole_texts, whole = snapshot_counts(data.snapshots, data.sources, block=10**6)
    texts, counts = snapshot_counts(data.snapshots, data.sources, block=7)
    assert texts == whole_texts and len(texts) > 10
    np.testing.assert_array_equal(counts.toarray(), whole.toarray())
    assert counts.shape == (len(data.snapshots), len(texts)) and counts.sum() > 0
