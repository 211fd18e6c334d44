"""Fixtures for the data tests: a tiny valid dataset that a test can break one file at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from qanchor.data.contract import EVENTS, LABELS, PROFILES, QA, SCENARIOS

T0 = pd.Timestamp("2024-03-01 08:00", tz="UTC")


def valid_files() -> dict[str, Any]:
    """The content of a small valid dataset, keyed by file name (all five files)."""
    events = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u1", "u3", "u2", "u1"],
            "ts": [T0 + pd.Timedelta(hours=h) for h in (5, 3, 1, 2, 4, 2)],
            "source": ["bill", "search", "bill", "app", "search", "bill"],
            "text": ["paid 10", "searched loans", "paid 20", "opened app", "searched cars", "x"],
            "value": [10.0, None, 20.0, None, None, 1.5],
        }
    )
    labels = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u3"],
            "scenario": ["churn", "loan"] * 3,
            "label": [0, 1, 1, 0, 0, 0],
            "split": ["train", "train", "val", "val", "test", "test"],
        }
    )
    profiles = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "age": [31, 45, 22],
            "income": [1.5, None, 3.0],
            "vip": [True, False, False],
            "city": ["Oslo", "Rome", None],
        }
    )
    qa = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "query": ["What does u1 buy?", "Bills?"],
            "answer": ["loans", "yes"],
        }
    )
    scenarios = [
        {"name": "churn", "query": "Will the user leave?", "description": "30-day churn"},
        {"name": "loan", "query": "Will the user take a loan?", "group": "finance"},
    ]
    return {EVENTS: events, LABELS: labels, PROFILES: profiles, QA: qa, SCENARIOS: scenarios}


def write_files(root: Path, files: dict[str, Any]) -> Path:
    """Write each file: DataFrame/Table -> parquet, list/dict -> YAML, str/bytes -> raw, None -> absent."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        if content is None:
            path.unlink(missing_ok=True)
        elif isinstance(content, pd.DataFrame):
            content.to_parquet(path, index=False)
        elif isinstance(content, pa.Table):
            pq.write_table(content, path)
        elif isinstance(content, list | dict):
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Return ``make(mutate=None, **files)``: write the valid dataset after changes.

    ``mutate(files)`` may edit the dict of file contents in place (e.g. set a cell); keyword
    arguments replace whole files by name with ``.`` as ``_`` (``events_parquet=None`` removes it).
    """

    def make(mutate: Callable[[dict[str, Any]], None] | None = None, **replace: Any) -> Path:
        files = valid_files()
        if mutate is not None:
            mutate(files)
        for key, content in replace.items():
            files[key.replace("_", ".")] = content
        return write_files(tmp_path / "ds", files)

    return make
