"""The ``tfidf_lr`` baseline: a planted word is found, test users never shape the vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset
from qanchor.errors import QAnchorError
from qanchor.eval.bag_baselines import read_bags, tfidf_lr, tfidf_lr_probe
from qanchor.eval.metrics import auc_ks

FILLER = [f"item{i}" for i in range(40)]


def _planted(users: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bags of filler texts; positives of ``planted`` usually also have a "treasure" text.

    ``noise`` labels are independent coin flips. Splits: 60% train, 10% val, 30% test.
    """
    rng = np.random.default_rng(seed)
    bags, labels = [], []
    for u in range(users):
        uid = f"u{u:03d}"
        y = int(rng.random() < 0.4)
        for _ in range(8):
            words = " ".join(rng.choice(FILLER, 2, replace=False))
            bags.append(
                (uid, str(rng.choice(["shop", "web"])), f"saw {words}", int(rng.integers(1, 4)))
            )
        if rng.random() < (0.8 if y else 0.1):
            bags.append((uid, "shop", "found treasure chest", 1))
        split = "train" if u % 10 < 6 else "val" if u % 10 == 6 else "test"
        labels += [(uid, "planted", y, split), (uid, "noise", int(rng.random() < 0.5), split)]
    return (
        pd.DataFrame(bags, columns=["user_id", "source", "text", "count"]),
        pd.DataFrame(labels, columns=["user_id", "scenario", "label", "split"]),
    )


def test_tfidf_lr_recovers_a_planted_word() -> None:
    bags, labels = _planted()
    res = tfidf_lr_probe(bags, labels, seed=0)
    assert set(res) == {"planted", "noise"} and not res.skipped
    n_test = int((labels[labels["scenario"] == "planted"]["split"] == "test").sum())
    y, scores = res["planted"]
    assert len(y) == len(scores) == n_test and ((scores >= 0) & (scores <= 1)).all()
    planted, noise = auc_ks(*res["planted"])[0], auc_ks(*res["noise"])[0]
    assert planted > 0.8 and planted > noise + 0.2
    again = tfidf_lr_probe(bags, labels, seed=0)  # deterministic
    np.testing.assert_array_equal(again["planted"][1], scores)


def test_test_users_never_shape_the_vocabulary() -> None:
    """Terms only test users have must not enter the vocabulary: if they did, they would
    change those users' L2-normalised rows and hence their scores."""
    bags, labels = _planted()
    base = tfidf_lr_probe(bags, labels, seed=0)
    test_users = labels.loc[labels["split"] == "test", "user_id"].unique()
    extra = pd.DataFrame({"user_id": test_users, "source": "zzsource",
                          "text": "unseen marker words", "count": 3})  # fmt: skip
    res = tfidf_lr_probe(pd.concat([bags, extra], ignore_index=True), labels, seed=0)
    for s in base:
        np.testing.assert_array_equal(res[s][0], base[s][0])
        np.testing.assert_allclose(res[s][1], base[s][1], rtol=0, atol=1e-12)
    # The same words given to training users do enter it, and do move the test scores.
    train_users = labels.loc[labels["split"] == "train", "user_id"].unique()[:5]
    seen = extra.assign(user_id=np.resize(train_users, len(extra)))
    both = pd.concat([bags, extra, seen.iloc[:5]], ignore_index=True)
    moved = tfidf_lr_probe(both, labels, seed=0)
    assert not np.allclose(moved["planted"][1], base["planted"][1])


def test_one_class_scenarios_are_skipped_with_a_reason() -> None:
    bags, labels = _planted(users=60)
    labels.loc[(labels["scenario"] == "noise") & (labels["split"] == "test"), "label"] = 0
    res = tfidf_lr_probe(bags, labels, seed=0)
    assert set(res) == {"planted"} and "test has" in res.skipped["noise"]


def test_tfidf_lr_on_a_built_dataset(toy_dataset: Path, tmp_path: Path) -> None:
    built = build_dataset(toy_dataset, tmp_path / "built", resolve(BuildConfig, "tiny"))
    users, bags = read_bags(built)
    assert len(users) == len(pd.read_parquet(built / "snapshots.parquet"))
    assert (
        list(bags.columns) == ["user_id", "source", "text", "count"] and (bags["count"] >= 1).all()
    )
    res = tfidf_lr(built, seed=0)
    # Buyers' events name shoes/books/phone, readers' news/weather: the words give it away.
    assert res and all(auc_ks(*r)[0] > 0.9 for r in res.values())


def test_a_build_without_bag_columns_asks_for_a_rebuild(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["a"], "event_text": [["x"]]}).to_parquet(
        tmp_path / "snapshots.parquet"
    )
    with pytest.raises(QAnchorError, match=r"no whole-history bag columns .*rebuild"):
        tfidf_lr(tmp_path)
