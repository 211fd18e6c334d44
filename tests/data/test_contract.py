"""The input contract: fatal errors name file/column/rows, bad rows are quarantined, dtypes hold."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from qanchor.data.contract import (
    EVENTS,
    LABELS,
    PROFILES,
    QA,
    SCENARIOS,
    Scenario,
    read_scenarios,
    write_scenarios,
)
from qanchor.data.loader import Dataset, load_dataset, write_quarantine
from qanchor.data.validate import format_rows
from qanchor.errors import ContractError


def _set(file: str, column: str, row: int, value: Any):
    """A mutation that sets one cell (the column keeps its dtype unless the value forces one)."""

    def mutate(files: dict[str, Any]) -> None:
        df = files[file]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            df[column] = df[column].astype(object)
        df.loc[row, column] = value

    return mutate


def _edit(file: str, fn):
    """A mutation that replaces a frame or YAML list with ``fn(old)``."""

    def mutate(files: dict[str, Any]) -> None:
        files[file] = fn(files[file])

    return mutate


BAD_INPUTS = [
    # (id, mutation, pattern the ContractError message must match)
    (
        "events missing",
        _edit(EVENTS, lambda _: None),
        r"events\.parquet: required file not found: expected .*ds/events\.parquet",
    ),
    (
        "labels missing",
        _edit(LABELS, lambda _: None),
        r"labels\.parquet: required file not found: expected .*labels\.parquet",
    ),
    (
        "scenarios missing",
        _edit(SCENARIOS, lambda _: None),
        r"scenarios\.yaml: required file not found",
    ),
    (
        "corrupt parquet",
        _edit(EVENTS, lambda _: b"not parquet at all"),
        r"events\.parquet: cannot read .* as parquet",
    ),
    (
        "events column missing",
        _edit(EVENTS, lambda df: df.drop(columns="text")),
        r"events\.parquet: missing required column\(s\) \['text'\]; columns found: \['user_id', 'ts', 'source', 'value'\]",
    ),
    (
        "int user_id",
        _edit(EVENTS, lambda df: df.assign(user_id=range(len(df)))),
        r"(?s)events\.parquet, column 'user_id': must be string, got int64; cast it to string.*row 1: user_id=1",
    ),
    (
        "numeric ts",
        _edit(EVENTS, lambda df: df.assign(ts=1700000000)),
        r"events\.parquet, column 'ts': must be a timestamp or a timestamp string, got int64",
    ),
    (
        "string value",
        _edit(EVENTS, lambda df: df.assign(value="12")),
        r"events\.parquet, column 'value': must be numeric, got string",
    ),
    (
        "null user_id events",
        _set(EVENTS, "user_id", 3, None),
        r"(?s)events\.parquet, column 'user_id': 1 row\(s\) with a null or empty user_id.*row 3: user_id=null",
    ),
    ("no events", _edit(EVENTS, lambda df: df.iloc[:0]), r"events\.parquet: no events at all"),
    (
        "all events bad",
        _edit(EVENTS, lambda df: df.assign(text="")),
        r"events\.parquet: no events left after quarantine \(\{'null text': 6\}\)$",
    ),
    (
        "user ids do not match",
        _edit(LABELS, lambda df: df.assign(user_id=df["user_id"].str.upper())),
        r"events\.parquet: no events left after quarantine \(\{'user has no label': 6\}\); check that user_id values match labels\.parquet",
    ),
    (
        "label 2",
        _set(LABELS, "label", 4, 2),
        r"(?s)labels\.parquet, column 'label': label must be 0 or 1; 1 row\(s\).*row 4: user_id='u3', scenario='churn', label=2, split='test'$",
    ),
    (
        "label NaN",
        _set(LABELS, "label", 1, np.nan),
        r"(?s)labels\.parquet, column 'label': label must be 0 or 1.*row 1: .*label=null",
    ),
    (
        "label string",
        _edit(LABELS, lambda df: df.assign(label=df["label"].astype(str))),
        r"labels\.parquet, column 'label': must be integer, bool or float holding 0/1, got string",
    ),
    (
        "scenario int",
        _edit(LABELS, lambda df: df.assign(scenario=7)),
        r"labels\.parquet, column 'scenario': must be string, got int64",
    ),
    (
        "unknown scenario",
        _set(LABELS, "scenario", 5, "fraud"),
        r"(?s)labels\.parquet, column 'scenario': scenario\(s\) not defined in scenarios\.yaml: \['fraud'\]; defined: \['churn', 'loan'\].*row 5",
    ),
    (
        "duplicate label",
        _set(LABELS, "scenario", 1, "churn"),
        r"(?s)labels\.parquet, column 'scenario': duplicate \(user_id, scenario\) rows: 2 rows.*row 0: .*row 1: ",
    ),
    (
        "bad split",
        _edit(LABELS, lambda df: df.assign(split="training")),
        r"labels\.parquet, column 'split': invalid split value\(s\) \['training'\]; allowed: \['train', 'val', 'test'\]",
    ),
    (
        "mixed split",
        _set(LABELS, "split", 1, "test"),
        r"(?s)labels\.parquet, column 'split': 1 user\(s\) have different split values .*'u1'.*row 0: ",
    ),
    ("no labels", _edit(LABELS, lambda df: df.iloc[:0]), r"labels\.parquet: no labels at all"),
    (
        "labels column missing",
        _edit(LABELS, lambda df: df.drop(columns="label")),
        r"labels\.parquet: missing required column\(s\) \['label'\]; columns found: \['user_id', 'scenario', 'split'\]",
    ),
    (
        "null user_id labels",
        _set(LABELS, "user_id", 2, ""),
        r"(?s)labels\.parquet, column 'user_id': 1 row\(s\) with a null or empty user_id.*row 2: user_id=''",
    ),
    (
        "yaml syntax",
        _edit(SCENARIOS, lambda _: "- name: churn\n  query: [unclosed\n"),
        r"scenarios\.yaml: not valid YAML",
    ),
    (
        "yaml mapping",
        _edit(SCENARIOS, lambda s: {"scenarios": s}),
        r"scenarios\.yaml: must be a list of scenarios, got a dict \(write the entries at the top level",
    ),
    (
        "yaml entry not mapping",
        _edit(SCENARIOS, lambda s: [*s, "fraud"]),
        r"(?s)scenarios\.yaml: each entry must be a mapping.*entry 2: 'fraud'",
    ),
    (
        "yaml no name",
        _edit(SCENARIOS, lambda s: [*s, {"query": "q?"}]),
        r"scenarios\.yaml, column 'name': a scenario without a name",
    ),
    (
        "yaml empty query",
        _edit(SCENARIOS, lambda s: [*s, {"name": "fraud", "query": " "}]),
        r"(?s)scenarios\.yaml, column 'query': a scenario without a query.*entry 2",
    ),
    (
        "yaml no query",
        _edit(SCENARIOS, lambda s: [*s, {"name": "fraud"}]),
        r"scenarios\.yaml, column 'query': a scenario without a query",
    ),
    (
        "yaml duplicate name",
        _edit(SCENARIOS, lambda s: [*s, s[0]]),
        r"scenarios\.yaml, column 'name': duplicate scenario name\(s\): \['churn'\]",
    ),
    (
        "yaml unknown key",
        _edit(SCENARIOS, lambda s: [{**s[0], "prompt": "x"}, s[1]]),
        r"scenarios\.yaml: unknown key\(s\) \['prompt'\]; allowed keys: \['name', 'query', 'description', 'group'\]",
    ),
    (
        "yaml empty list",
        _edit(SCENARIOS, lambda _: []),
        r"scenarios\.yaml: the scenario list is empty",
    ),
    (
        "yaml name not string",
        _edit(SCENARIOS, lambda s: [*s, {"name": 3, "query": "q"}]),
        r"scenarios\.yaml, column 'name': must be a string, got int",
    ),
    (
        "scenario name climbs out",
        _edit(SCENARIOS, lambda s: [*s, {"name": "../../etc/x", "query": "q?"}]),
        r"(?s)scenarios\.yaml, column 'name': invalid scenario name '\.\./\.\./etc/x': use 1-64 letters.*entry 2",
    ),
    (
        "scenario name with a slash",
        _edit(SCENARIOS, lambda s: [*s, {"name": "risk/loan", "query": "q?"}]),
        r"scenarios\.yaml, column 'name': invalid scenario name 'risk/loan'",
    ),
    (
        "scenario name hidden",
        _edit(SCENARIOS, lambda s: [*s, {"name": ".loan", "query": "q?"}]),
        r"scenarios\.yaml, column 'name': invalid scenario name '\.loan'",
    ),
    (
        "scenario name too long",
        _edit(SCENARIOS, lambda s: [*s, {"name": "x" * 65, "query": "q?"}]),
        r"scenarios\.yaml, column 'name': invalid scenario name 'x+\.\.\.x+'",
    ),
    (
        "huge alias-expanded entry",
        # 9 levels of 9 aliases: ~387M strings if rendered in full; the message stays short.
        _edit(
            SCENARIOS,
            lambda s: (
                "a: &a [x, x, x, x, x, x, x, x, x]\n"
                + "".join(
                    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
                    for i in range(8)
                )
                + "c0: 1\n"
            ),
        ),  # fmt: skip
        r"scenarios\.yaml: must be a list of scenarios, got a dict",
    ),
    (
        "huge alias-expanded bad entry",
        _edit(
            SCENARIOS,
            lambda s: (
                "- &a {name: n, query: q, x: [1, 2, 3, 4, 5, 6, 7, 8]}\n"
                "- {name: m, query: q, prompt: [*a, *a, *a, *a, *a, *a, *a, *a, *a]}\n"
            ),
        ),  # fmt: skip
        r"(?s)scenarios\.yaml: unknown key\(s\) \['x'\].*entry 0: \{'name': 'n', 'query': 'q', 'x': \[1, 2, 3, 4, \.\.\.\]\}$",
    ),
    (
        "profiles duplicate user",
        _set(PROFILES, "user_id", 2, "u1"),
        r"(?s)profiles\.parquet, column 'user_id': duplicate user_id: 2 rows.*row 0: user_id='u1'.*row 2: user_id='u1'",
    ),
    (
        "profiles list column",
        _edit(PROFILES, lambda df: df.assign(tags=[["a"], [], ["b"]])),
        r"profiles\.parquet, column 'tags': must be numeric, bool or string \(categorical\), got list<",
    ),
    (
        "profiles null user",
        _set(PROFILES, "user_id", 0, None),
        r"profiles\.parquet, column 'user_id': 1 row\(s\) with a null or empty user_id",
    ),
    (
        "qa missing column",
        _edit(QA, lambda df: df.drop(columns="answer")),
        r"qa\.parquet: missing required column\(s\) \['answer'\]; columns found: \['user_id', 'query'\]",
    ),
    (
        "qa int user",
        _edit(QA, lambda df: df.assign(user_id=[1, 2])),
        r"qa\.parquet, column 'user_id': must be string, got int64",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "pattern"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_raises_a_clear_contract_error(make_dataset, mutate, pattern: str) -> None:
    root = make_dataset(mutate)
    with pytest.raises(ContractError, match=pattern):
        load_dataset(root)


def test_missing_dataset_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ContractError,
        match=r"nowhere: dataset directory not found: expected a directory with events\.parquet",
    ):
        load_dataset(tmp_path / "nowhere")


def test_contract_error_carries_file_and_column(make_dataset) -> None:
    root = make_dataset(_set(LABELS, "label", 0, 5))
    with pytest.raises(ContractError) as info:
        load_dataset(root)
    assert (info.value.file, info.value.column) == (LABELS, "label")
    assert "row 0:" in info.value.rows and "Traceback" not in str(info.value)


def test_valid_dataset_loads_with_clean_dtypes(make_dataset) -> None:
    ds = load_dataset(make_dataset())
    ev = ds.events
    assert list(ev.columns) == ["user_id", "ts", "source", "text", "value"]
    assert pd.api.types.is_string_dtype(ev["user_id"]) and pd.api.types.is_string_dtype(ev["text"])
    assert isinstance(ev["ts"].dtype, pd.DatetimeTZDtype) and str(ev["ts"].dt.tz) == "UTC"
    assert ev["value"].dtype == np.float64 and ev["value"].isna().sum() == 3
    assert isinstance(ev.index, pd.RangeIndex)
    assert list(zip(ev["user_id"], ev["text"], strict=True))[:3] == [
        ("u1", "paid 20"),
        ("u1", "x"),
        ("u1", "searched loans"),
    ]
    assert ev.equals(ev.sort_values(["user_id", "ts"]).reset_index(drop=True))
    assert ds.labels["label"].dtype == np.int8 and list(ds.labels.columns) == [
        "user_id",
        "scenario",
        "label",
        "split",
    ]
    assert ds.labels.groupby("user_id")["split"].first().to_dict() == {
        "u1": "train",
        "u2": "val",
        "u3": "test",
    }
    assert ds.sources == ["app", "bill", "search"]
    assert ds.scenarios[1] == Scenario("loan", "Will the user take a loan?", "", "finance")
    assert ds.quarantine == {} and ds.quarantine_counts() == {}
    assert isinstance(ds, Dataset) and ds.root.name == "ds"


def test_profiles_and_qa_are_loaded(make_dataset) -> None:
    ds = load_dataset(make_dataset())
    assert ds.profiles is not None and list(ds.profiles.columns) == [
        "user_id",
        "age",
        "income",
        "vip",
        "city",
    ]
    assert ds.profiles["user_id"].is_unique and pd.api.types.is_numeric_dtype(ds.profiles["age"])
    assert ds.qa is not None and ds.qa.to_dict("records")[1] == {
        "user_id": "u2",
        "query": "Bills?",
        "answer": "yes",
    }


def test_optional_files_and_columns_absent(make_dataset) -> None:
    root = make_dataset(
        profiles_parquet=None,
        qa_parquet=None,
        mutate=_edit(LABELS, lambda df: df.drop(columns="split")),
    )
    ds = load_dataset(_drop_col(root, EVENTS, "value"))
    assert ds.profiles is None and ds.qa is None
    assert ds.events["value"].dtype == np.float64 and ds.events["value"].isna().all()
    assert ds.labels["split"].isna().all() and len(ds.labels) == 6


def _drop_col(root: Path, file: str, column: str) -> Path:
    df = pd.read_parquet(root / file)
    df.drop(columns=column).to_parquet(root / file, index=False)
    return root


def test_extra_columns_are_ignored(make_dataset) -> None:
    root = make_dataset(
        _edit(EVENTS, lambda df: df.assign(device=["ios"] * len(df), nested=[[1]] * len(df)))
    )
    _edit_file(root, LABELS, lambda df: df.assign(note="x"))
    ds = load_dataset(root)
    assert "device" not in ds.events.columns and "nested" not in ds.events.columns
    assert "note" not in ds.labels.columns and len(ds.events) == 6


def _edit_file(root: Path, file: str, fn) -> None:
    fn(pd.read_parquet(root / file)).to_parquet(root / file, index=False)


def test_string_timestamps_parse_in_any_common_format(make_dataset) -> None:
    stamps = [
        "2024-03-01T09:00:00Z",
        "2024-03-01 11:00:00+02:00",
        "2024-03-01",
        "03/02/2024 10:30",
        "2024-03-01T10:00:00.123",
        "2024-03-01T08:00",
    ]
    ds = load_dataset(make_dataset(_edit(EVENTS, lambda df: df.assign(ts=stamps))))
    got = ds.events.set_index("text")["ts"]
    assert got["paid 10"] == pd.Timestamp("2024-03-01 09:00", tz="UTC")
    assert got["searched loans"] == pd.Timestamp("2024-03-01 09:00", tz="UTC")  # +02:00 -> UTC
    assert got["paid 20"] == pd.Timestamp("2024-03-01", tz="UTC")
    assert got["opened app"] == pd.Timestamp("2024-03-02 10:30", tz="UTC")
    assert got["x"] == pd.Timestamp("2024-03-01 08:00", tz="UTC") and ds.quarantine == {}


def test_naive_and_other_zone_timestamps_become_utc(make_dataset) -> None:
    naive = make_dataset(_edit(EVENTS, lambda df: df.assign(ts=df["ts"].dt.tz_localize(None))))
    ds = load_dataset(naive)
    assert str(ds.events["ts"].dt.tz) == "UTC"
    assert ds.events["ts"].min() == pd.Timestamp("2024-03-01 09:00", tz="UTC")
    tokyo = make_dataset(
        _edit(EVENTS, lambda df: df.assign(ts=df["ts"].dt.tz_convert("Asia/Tokyo")))
    )
    assert load_dataset(tokyo).events["ts"].min() == pd.Timestamp("2024-03-01 09:00", tz="UTC")


@pytest.mark.parametrize(
    "fmt", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+01:00"]
)
def test_uniform_string_timestamps_parse_to_utc(make_dataset, fmt: str) -> None:
    # One format for every row: the fast Arrow path; the offset is honoured, naive means UTC.
    root = make_dataset(_edit(EVENTS, lambda df: df.assign(ts=df["ts"].dt.strftime(fmt))))
    ts = load_dataset(root).events["ts"]
    shift = pd.Timedelta(hours=1) if fmt.endswith("+01:00") else pd.Timedelta(0)
    assert str(ts.dt.tz) == "UTC" and ts.min() == pd.Timestamp("2024-03-01 09:00", tz="UTC") - shift
    assert len(ts) == 6 and ts.notna().all()


def test_bool_labels_and_categorical_strings_are_accepted(make_dataset) -> None:
    root = make_dataset(
        _edit(
            LABELS,
            lambda df: df.assign(
                label=df["label"].astype(bool), scenario=df["scenario"].astype("category")
            ),
        )
    )
    ds = load_dataset(root)
    assert ds.labels["label"].tolist() == [0, 1, 1, 0, 0, 0] and ds.labels["label"].dtype == np.int8
    assert pd.api.types.is_string_dtype(ds.labels["scenario"]) and not isinstance(
        ds.labels["scenario"].dtype, pd.CategoricalDtype
    )


def _quarantine_case(
    make_dataset, mutate, tmp_path: Path
) -> tuple[Dataset, dict[str, pd.DataFrame]]:
    ds = load_dataset(make_dataset(mutate))
    counts = write_quarantine(ds, tmp_path / "out")
    written = {
        f: pd.read_parquet(tmp_path / "out" / "quarantine" / f)
        for f in sorted(p.name for p in (tmp_path / "out" / "quarantine").glob("*.parquet"))
    }
    assert counts == {
        f: sum(ds.quarantine_counts().get(f, {}).values()) for f in (EVENTS, LABELS, PROFILES, QA)
    }
    return ds, written


def _add_events(rows: list[dict[str, Any]]):
    # Cast the new rows to the frame's dtypes: concat with all-null columns warns on pandas 2.
    return _edit(
        EVENTS,
        lambda df: pd.concat(
            [df, pd.DataFrame(rows).astype(df.dtypes.to_dict())], ignore_index=True
        ),
    )


T = pd.Timestamp("2024-03-02", tz="UTC")


@pytest.mark.parametrize(
    ("rows", "reason", "n"),
    [
        (
            [
                {"user_id": "u1", "ts": T, "source": "bill", "text": t, "value": 1.0}
                for t in (None, "", "  ")
            ],
            "null text",
            3,
        ),
        (
            [{"user_id": "u1", "ts": None, "source": "bill", "text": "late", "value": 1.0}],
            "unparseable timestamp",
            1,
        ),
        (
            [
                {"user_id": "u1", "ts": T, "source": s, "text": "t", "value": 1.0}
                for s in (None, "")
            ],
            "null source",
            2,
        ),
        (
            [{"user_id": "u9", "ts": T, "source": "bill", "text": "stranger", "value": 1.0}],
            "user has no label",
            1,
        ),
    ],
    ids=["null text", "unparseable timestamp", "null source", "user has no label"],
)
def test_bad_event_rows_are_quarantined(make_dataset, tmp_path, rows, reason, n) -> None:
    ds, written = _quarantine_case(make_dataset, _add_events(rows), tmp_path)
    assert ds.quarantine_counts() == {EVENTS: {reason: n}}
    assert len(ds.events) == 6 and list(written) == ["events.parquet"]
    q = written["events.parquet"]
    assert q["reason"].tolist() == [reason] * n and q.index.tolist() == list(range(6, 6 + n))
    assert {"user_id", "ts", "source", "text", "value", "reason"} <= set(q.columns)


def test_unparseable_string_timestamp_keeps_its_original_text(make_dataset, tmp_path) -> None:
    stamps = [
        "2024-03-01T09:00:00Z",
        "yesterday-ish",
        "2024-03-01",
        "",
        "2024-03-01T10:00",
        "2024-03-01",
    ]
    ds, written = _quarantine_case(
        make_dataset, _edit(EVENTS, lambda df: df.assign(ts=stamps)), tmp_path
    )
    q = written["events.parquet"]
    assert q["ts"].tolist() == ["yesterday-ish", ""] and set(q["reason"]) == {
        "unparseable timestamp"
    }
    assert len(ds.events) == 4


def test_exact_duplicate_events_keep_the_first(make_dataset, tmp_path) -> None:
    def mutate(files: dict[str, Any]) -> None:
        ev = files[EVENTS]
        near = ev.iloc[[0]].assign(value=11.0)  # differs in value: not a duplicate
        files[EVENTS] = pd.concat([ev, ev.iloc[[1, 0]], near, ev.iloc[[1]]], ignore_index=True)

    ds, written = _quarantine_case(make_dataset, mutate, tmp_path)
    assert ds.quarantine_counts() == {EVENTS: {"duplicate event": 3}}
    assert written["events.parquet"].index.tolist() == [6, 7, 9]  # row 1 (NaN value) matched twice
    assert len(ds.events) == 7 and (ds.events["value"] == 11.0).sum() == 1


def test_string_timestamp_spellings_of_one_instant_are_duplicates(make_dataset) -> None:
    stamps = ["2024-03-01T09:00:00Z", "2024-03-01 11:00:00+02:00"]
    rows = [
        {"user_id": "u3", "ts": s, "source": "app", "text": "same", "value": 2.0} for s in stamps
    ]
    root = make_dataset(
        _edit(
            EVENTS,
            lambda df: pd.concat(
                [df.assign(ts=df["ts"].astype(str)), pd.DataFrame(rows)], ignore_index=True
            ),
        )
    )
    assert load_dataset(root).quarantine_counts() == {EVENTS: {"duplicate event": 1}}


def test_labels_of_users_without_valid_events_are_quarantined(make_dataset, tmp_path) -> None:
    def mutate(files: dict[str, Any]) -> None:
        files[EVENTS].loc[3, "text"] = ""  # u3's only event is bad, so u3 has no events left
        files[LABELS] = pd.concat(
            [
                files[LABELS],
                pd.DataFrame(
                    {"user_id": ["u4"], "scenario": ["churn"], "label": [1], "split": ["train"]}
                ),
            ],
            ignore_index=True,
        )

    ds, written = _quarantine_case(make_dataset, mutate, tmp_path)
    assert ds.quarantine_counts() == {EVENTS: {"null text": 1}, LABELS: {"user has no events": 3}}
    assert written["labels.parquet"]["user_id"].tolist() == ["u3", "u3", "u4"]
    assert set(ds.labels["user_id"]) == {"u1", "u2"} and isinstance(ds.labels.index, pd.RangeIndex)


def test_empty_qa_pairs_are_quarantined(make_dataset, tmp_path) -> None:
    qa = pd.DataFrame(
        {"user_id": ["u1", "u2", "u3"], "query": ["q1", None, "q3"], "answer": ["a1", "a2", " "]}
    )
    ds, written = _quarantine_case(make_dataset, _edit(QA, lambda _: qa), tmp_path)
    assert ds.quarantine_counts() == {QA: {"empty query or answer": 2}}
    assert ds.qa is not None and ds.qa["user_id"].tolist() == ["u1"]
    assert written["qa.parquet"].index.tolist() == [1, 2]


def test_write_quarantine_skips_empty_files_and_removes_stale_ones(make_dataset, tmp_path) -> None:
    stale = tmp_path / "out" / "quarantine" / "labels.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old run")
    ds = load_dataset(
        make_dataset(
            _add_events([{"user_id": "u1", "ts": None, "source": "a", "text": "t", "value": None}])
        )
    )
    counts = write_quarantine(ds, tmp_path / "out")
    assert counts == {EVENTS: 1, LABELS: 0, PROFILES: 0, QA: 0}
    assert sorted(p.name for p in stale.parent.iterdir()) == ["events.parquet"]


def test_scenarios_round_trip(tmp_path: Path) -> None:
    scenarios = [
        Scenario("churn", "Will the user leave?"),
        Scenario("loan", "Loan?", "needs money", "finance"),
    ]
    path = tmp_path / SCENARIOS
    write_scenarios(scenarios, path)
    assert read_scenarios(path) == scenarios
    assert "description" not in path.read_text().split("- name: loan")[0]  # empty fields omitted


def test_format_rows_shows_five_rows_and_counts_the_rest() -> None:
    df = pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(8)], "text": ["t" * 100] * 8, "n": range(8)}
    )
    text = format_rows(df, df["n"] >= 1, ["user_id", "text", "missing"])
    lines = text.splitlines()
    assert lines[0].startswith("    row 1: user_id='u1', text='ttt") and lines[0].endswith("...")
    assert len(lines) == 6 and lines[-1] == "    ... and 2 more"
    assert format_rows(df, [7], ["n"]) == "    row 7: n=7"


def test_partitioned_events_directory_is_read(make_dataset) -> None:
    root = make_dataset()
    events = pd.read_parquet(root / EVENTS)
    (root / EVENTS).unlink()
    (root / EVENTS).mkdir()
    events.iloc[:3].to_parquet(root / EVENTS / "part-0.parquet", index=False)
    events.iloc[3:].to_parquet(root / EVENTS / "part-1.parquet", index=False)
    assert len(load_dataset(root).events) == 6


def test_arrow_large_strings_and_all_null_value_column(make_dataset) -> None:
    table = pa.table(
        {
            "user_id": pa.array(["u1", "u2", "u3"], pa.large_string()),
            "ts": pa.array([pd.Timestamp("2024-01-01")] * 3, pa.timestamp("ms")),
            "source": pa.array(["a", "b", "a"]).dictionary_encode(),
            "text": pa.array(["x", "y", "z"], pa.large_string()),
            "value": pa.nulls(3),
        }
    )
    ds = load_dataset(make_dataset(events_parquet=table))
    assert ds.events["value"].isna().all() and ds.sources == ["a", "b"]
    assert pd.api.types.is_string_dtype(ds.events["source"]) and str(ds.events["ts"].dt.tz) == "UTC"


def _stamp_rows(stamps: list, arrow_type=None):
    """Events 0..n-1 re-dated with ``stamps`` (ISO strings, or values of an Arrow type)."""

    def mutate(files: dict[str, Any]) -> None:
        df = files[EVENTS]
        values = [*stamps, *df["ts"].iloc[len(stamps) :]]
        if arrow_type is None:
            files[EVENTS] = df.assign(ts=[str(v) for v in values])
        else:
            table = pa.Table.from_pandas(df.drop(columns="ts"), preserve_index=False)
            py = [v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in values]
            files[EVENTS] = table.append_column("ts", pa.array(py, arrow_type))

    return mutate


@pytest.mark.parametrize(
    ("stamps", "arrow_type"),
    [
        (["9999-12-31", "0001-01-01T00:00:00"], None),
        (["1850-06-01 12:00"], None),
        (
            [dt.datetime(9999, 12, 31, tzinfo=dt.UTC), dt.datetime(1, 1, 1, tzinfo=dt.UTC)],
            pa.timestamp("us", "UTC"),
        ),  # fmt: skip
        ([dt.date(9999, 12, 31)], pa.date32()),
    ],
    ids=["strings", "before 1900", "arrow us", "arrow date"],
)
def test_out_of_range_timestamps_are_quarantined_with_their_reason(
    make_dataset, tmp_path, stamps, arrow_type
) -> None:
    ds, written = _quarantine_case(make_dataset, _stamp_rows(stamps, arrow_type), tmp_path)
    assert ds.quarantine_counts() == {EVENTS: {"timestamp out of range": len(stamps)}}
    assert len(ds.events) == 6 - len(stamps) and str(ds.events["ts"].dtype) == "datetime64[ns, UTC]"
    assert written["events.parquet"].index.tolist() == list(range(len(stamps)))


def test_events_after_the_horizon_are_quarantined(make_dataset) -> None:
    late = pd.Timestamp("2126-01-01", tz="UTC")
    root = make_dataset(_stamp_rows([late, late + pd.Timedelta(days=1)]))
    assert load_dataset(root).quarantine_counts() == {}  # no horizon: accepted
    ds = load_dataset(root, horizon=pd.Timestamp("2026-01-01", tz="UTC"))
    assert ds.quarantine_counts() == {EVENTS: {"timestamp after the horizon": 2}}
    assert ds.events["ts"].max() < pd.Timestamp("2025-01-01", tz="UTC")


def test_infinite_numbers_are_nulled_and_counted(make_dataset) -> None:
    def mutate(files: dict[str, Any]) -> None:
        files[PROFILES].loc[[0, 1], "income"] = [np.inf, -np.inf]
        files[EVENTS].loc[0, "value"] = np.inf

    ds = load_dataset(make_dataset(mutate))
    assert ds.nulled == {EVENTS: {"value": 1}, PROFILES: {"income": 2}}
    assert np.isfinite(ds.profiles["income"].dropna()).all()
    assert np.isfinite(ds.events["value"].dropna()).all()


def test_symbolic_links_are_followed_and_listed(make_dataset, tmp_path) -> None:
    root = make_dataset()
    elsewhere = tmp_path / "elsewhere.parquet"
    (root / PROFILES).rename(elsewhere)
    (root / PROFILES).symlink_to(elsewhere)
    ds = load_dataset(root)
    assert ds.links == {PROFILES: str(elsewhere.resolve())} and len(ds.profiles) == 3


def _build_cli(root: Path, out: Path, capsys) -> tuple[int, str]:
    from qanchor.cli import main

    rc = main(["data", "build", "--input", str(root), "--out", str(out), "--preset", "tiny"])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "pattern"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_every_bad_dataset_exits_2_through_the_cli(
    make_dataset, tmp_path, capsys, mutate, pattern: str
) -> None:
    """What a user sees: exit 2 and the file/column/rows message, never a traceback."""
    rc, err = _build_cli(make_dataset(mutate), tmp_path / "built", capsys)
    assert rc == 2 and err.startswith("qanchor: error: ") and "Traceback" not in err
    assert re.search(pattern.removesuffix("$"), err.removeprefix("qanchor: error: "))
    assert not (tmp_path / "built").exists()


@pytest.mark.parametrize(
    ("mutate", "counted"),
    [
        (_stamp_rows(["9999-12-31", "0001-01-01"]), {"timestamp out of range": 2}),
        (_stamp_rows([dt.date(9999, 12, 31)], pa.date32()), {"timestamp out of range": 1}),
        (_stamp_rows(["2226-01-01T00:00:00Z"]), {"timestamp after the horizon": 1}),
        (_stamp_rows(["yesterday-ish"]), {"unparseable timestamp": 1}),
    ],
    ids=["out of range", "arrow date 9999", "far future", "unparseable"],
)
def test_bad_rows_are_a_counted_quarantine_through_the_cli(
    make_dataset, tmp_path, capsys, mutate, counted
) -> None:
    rc, err = _build_cli(make_dataset(mutate), tmp_path / "built", capsys)
    assert rc == 0 and "Traceback" not in err
    manifest = json.loads((tmp_path / "built" / "manifest.json").read_text())
    assert manifest["quarantined"][EVENTS] == sum(counted.values())
    report = (tmp_path / "built" / "report.md").read_text()
    assert all(f"| {EVENTS} | {reason} | {n} |" in report for reason, n in counted.items())


T0 = pd.Timestamp("2024-03-01 08:00", tz="UTC")


def test_the_build_warns_of_outliers_one_class_infinities_and_links(make_dataset, tmp_path) -> None:
    from qanchor.config import resolve
    from qanchor.data.build import BuildConfig, build_dataset

    def mutate(files: dict[str, Any]) -> None:
        dense = pd.DataFrame({"user_id": "u1", "ts": [T0 + pd.Timedelta(hours=h) for h in range(300)],
                              "source": "bill", "text": "paid", "value": 1.0})  # fmt: skip
        late = dense.iloc[:1].assign(ts=T0 + pd.Timedelta(days=300), text="late")
        files[EVENTS] = pd.concat([files[EVENTS], dense, late], ignore_index=True)
        files[PROFILES].loc[0, "income"] = np.inf
        files[LABELS]["label"] = [1, 1, 0, 1, 0, 1]  # churn: train has only 1, loan: only 1

    root = make_dataset(mutate)
    (root / "scenarios.yaml").rename(tmp_path / "scenarios.yaml")
    (root / "scenarios.yaml").symlink_to(tmp_path / "scenarios.yaml")
    out = build_dataset(root, tmp_path / "built", resolve(BuildConfig, "tiny"))
    warnings = json.loads((out / "manifest.json").read_text())["warnings"]
    assert len(warnings) == 5, warnings
    assert "leaves 1 event(s) in the 30-day future window" in warnings[0]
    assert "scenario 'churn' has only label 1 in the train split" in warnings[1]
    assert "scenario 'loan' has only label 1 in the train split" in warnings[2]
    assert warnings[3] == "profiles.parquet: infinite values set to null: {'income': 1}"
    assert warnings[4].startswith("scenarios.yaml is a symbolic link to ")
    report = (out / "report.md").read_text()
    assert "## Warnings" in report and warnings[0] in report
    assert "inf" not in pd.read_parquet(out / "pairs.parquet")["answer"].str.cat()
