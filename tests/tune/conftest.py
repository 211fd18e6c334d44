"""Shared setup of the guard tests: one scenario's labels and an embedder with every tiny user."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qanchor.infer.engine import Embedder

COUPON = ("coupon_redemption", "Will this user redeem a coupon?")


@pytest.fixture
def coupon_split(tiny_model: Path, built_tiny: Path) -> tuple:
    """(embedder with all tiny users loaded, coupon_redemption train labels, val labels,
    the scenario's (name, query))."""
    labels = pd.read_parquet(built_tiny / "labels.parquet")
    labels = labels[labels["scenario"] == COUPON[0]]
    emb = Embedder.from_dir(tiny_model)
    emb.load_users(pd.read_parquet(built_tiny / "snapshots.parquet"),
                   pd.read_parquet(built_tiny / "profiles.parquet"))  # fmt: skip
    return emb, labels[labels["split"] == "train"], labels[labels["split"] == "val"], COUPON
