"""The CDNOW importer: ``convert`` on hand-written master rows, then the real import.

The real import fetches the lifetimes wheel (under 1 MB) from PyPI with pip into a temp cache;
it takes seconds, so it stays in the default suite, like MovieLens'.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset, resolve_cutoff
from qanchor.data.cdnow import SCENARIOS, convert, import_cdnow, read_master
from qanchor.data.loader import load_dataset

MASTER = """ customer_id  date number_of_cds  dollar_value
 00001 19980101  1   11.77
 00001 19980603  2   29.33
 00002 19980115  5   77.00
 00003 19980520  3   45.00
 00003 19980530  1   15.00
 00004 19980610  4   60.00
 00005 19980530  2   31.00
 00005 19980630  1   12.00
"""


def master(tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "CDNOW_master.txt"
    path.write_text(MASTER)
    return read_master(path)


def test_orders_become_purchase_events_at_noon(tmp_path: Path) -> None:
    tables = convert(master(tmp_path))
    ev = tables["events"].sort_values(["user_id", "ts"]).reset_index(drop=True)
    # Last order 1998-06-30 -> last day ends 07-01 -> cutoff 30 days earlier.
    assert tables["cutoff"] == pd.Timestamp("1998-06-01", tz="UTC")
    assert resolve_cutoff(ev, BuildConfig()) == tables["cutoff"]  # what the build derives
    # c00004 bought only after the cutoff: no history, left out.
    assert ev["user_id"].unique().tolist() == ["c00001", "c00002", "c00003", "c00005"]
    assert ev["text"].tolist()[:3] == ["bought 1 CD for $11.77", "bought 2 CDs for $29.33",
                                       "bought 5 CDs for $77.00"]  # fmt: skip
    assert ev["value"].tolist()[:3] == [11.77, 29.33, 77.0]
    assert ev["ts"].iloc[0] == pd.Timestamp("1998-01-01 12:00", tz="UTC")
    assert set(ev["source"]) == {"purchase"}


def test_labels_count_the_30_days_after_the_cutoff(tmp_path: Path) -> None:
    labels = convert(master(tmp_path))["labels"]
    table = labels.pivot(index="user_id", columns="scenario", values="label")
    assert sorted(table.columns) == sorted(s["name"] for s in SCENARIOS)
    # c1: 2 CDs for $29.33 after; c2: nothing after; c3: all before; c5: 1 CD for $12 after.
    assert table["buys_next_month"].tolist() == [1, 0, 0, 1]
    assert table["spends_50_next_month"].tolist() == [0, 0, 0, 0]
    assert table["buys_3_cds_next_month"].tolist() == [0, 0, 0, 0]


def test_real_import_loads_and_builds(tmp_path: Path) -> None:
    out = import_cdnow(tmp_path / "cdnow", cache=tmp_path / "cache")
    assert list((tmp_path / "cache").glob("*.whl"))  # the wheel, fetched by pip
    ds = load_dataset(out)
    assert ds.events["user_id"].nunique() == 23_570  # every customer bought before June 1998
    assert ds.labels.groupby("scenario").size().eq(23_570).all()
    assert ds.profiles is None
    rates = ds.labels.groupby("scenario")["label"].mean()
    assert rates.min() > 0.01 and rates.max() < 0.2  # rare future purchases, not degenerate
    built = build_dataset(out, tmp_path / "built", resolve(BuildConfig, "tiny"))
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["sources"] == ["purchase"]
    assert pd.read_parquet(built / "users.parquet")["n_history"].gt(0).all()
    assert "Do not commit" in (out / "README.md").read_text()
