"""The input contract (DESIGN.md section 3): file names, columns, and ``scenarios.yaml``.

A dataset is a directory holding ``events.parquet``, ``labels.parquet`` and ``scenarios.yaml``,
and optionally ``profiles.parquet``, ``qa.parquet`` and ``sources.yaml``. This module only declares
that shape and reads/writes the scenario list; ``sources.yaml`` is parsed in ``sources``, the
checks on the parquet files live in ``validate`` and the assembly in ``loader``.

Example::

    scenarios = read_scenarios(Path("data/toy/scenarios.yaml"))
"""

from __future__ import annotations

import re
import reprlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qanchor.errors import ContractError

EVENTS, PROFILES, LABELS, SCENARIOS, QA, SOURCE_SPECS = (
    "events.parquet",
    "profiles.parquet",
    "labels.parquet",
    "scenarios.yaml",
    "qa.parquet",
    "sources.yaml",
)
REQUIRED_FILES = (EVENTS, LABELS, SCENARIOS)
SPLITS = ("train", "val", "test")

# Columns per parquet file: required ones must exist, optional ones are read when present.
# Any other column is ignored (not read at all, which also keeps memory down on wide files).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    EVENTS: ("user_id", "ts", "source", "text"),
    LABELS: ("user_id", "scenario", "label"),
    PROFILES: ("user_id",),
    QA: ("user_id", "query", "answer"),
}
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    EVENTS: ("value",),
    LABELS: ("split",),
}
EVENT_KEY = ("user_id", "ts", "source", "text", "value")  # all equal -> duplicate event

# Quarantine reasons: the exact strings written to the `reason` column of quarantined rows.
NULL_TEXT = "null text"
BAD_TS = "unparseable timestamp"
TS_OUT_OF_RANGE = "timestamp out of range"  # a date, but one no behaviour log holds (year 9999)
TS_FUTURE = "timestamp after the horizon"  # later than now + BuildConfig.future_horizon_days
NULL_SOURCE = "null source"
DUPLICATE_EVENT = "duplicate event"
NO_LABEL = "user has no label"
NO_EVENTS = "user has no events"
EMPTY_QA = "empty query or answer"

SCENARIO_KEYS = ("name", "query", "description", "group")
# A scenario name becomes a directory of the model (its adapter), an Airflow map index and a
# metrics key: a slug, so no name can climb out of the model directory ("../x") or hide in it.
SCENARIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCENARIO_NAME_RULE = "1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"


@dataclass(frozen=True)
class Scenario:
    """One scenario: its natural-language query is the anchor the user embedding adapts to.

    Attributes:
        name: Unique identifier, the value of ``scenario`` in ``labels.parquet``.
        query: The natural-language question, e.g. "Will this user repay a loan?".
        description: Free text for people; not used by the model.
        group: Optional family of scenarios (e.g. "risk", "marketing") for reporting.
    """

    name: str
    query: str
    description: str = ""
    group: str = ""


def read_scenarios(path: Path) -> list[Scenario]:
    """Read and validate ``scenarios.yaml``.

    Args:
        path: The YAML file: a non-empty list of ``{name, query, description?, group?}``.

    Returns:
        The scenarios in file order.

    Raises:
        ContractError: The file is missing, unreadable, not YAML, or breaks the contract.
    """
    path = Path(path)
    file = path.name
    data = load_yaml(path)
    if data is None or data == []:
        raise ContractError(file, "the scenario list is empty; define at least one scenario")
    if not isinstance(data, list):
        hint = (
            " (write the entries at the top level, not under a key)"
            if isinstance(data, dict)
            else ""
        )
        raise ContractError(file, f"must be a list of scenarios, got a {type(data).__name__}{hint}")
    scenarios = [_parse_entry(file, i, entry) for i, entry in enumerate(data)]
    _check_unique(file, scenarios)
    return scenarios


def load_yaml(path: Path, required: bool = True) -> Any:
    """The parsed content of a contract YAML file (None if empty, or absent and not required).

    Raises:
        ContractError: The file is required but missing, unreadable, or not YAML.
    """
    import yaml  # kept local: importing the package must stay cheap

    file = path.name
    try:
        with path.open(encoding="utf-8") as stream:  # a stream, so YAML errors name the file
            return yaml.safe_load(stream)
    except FileNotFoundError as exc:
        if not required:
            return None
        raise ContractError(file, f"required file not found: expected {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(file, f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ContractError(file, f"not valid YAML: {_one_line(exc)}") from exc


def write_scenarios(scenarios: list[Scenario], path: Path) -> None:
    """Write scenarios as ``scenarios.yaml`` (empty optional fields are left out)."""
    import yaml

    entries = [
        {k: v for k, v in asdict(s).items() if v or k in ("name", "query")} for s in scenarios
    ]
    Path(path).write_text(
        yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8"
    )


def _parse_entry(file: str, index: int, entry: Any) -> Scenario:
    """Turn one YAML list entry into a Scenario, or raise naming the entry."""
    where = f"    entry {index}: {_short(entry)}"
    if not isinstance(entry, dict):
        raise ContractError(
            file,
            f"each entry must be a mapping with 'name' and 'query', got a {type(entry).__name__}",
            rows=where,
        )
    unknown = sorted(str(k) for k in entry if k not in SCENARIO_KEYS)
    if unknown:
        raise ContractError(
            file, f"unknown key(s) {unknown}; allowed keys: {list(SCENARIO_KEYS)}", rows=where
        )
    values = {}
    for key in SCENARIO_KEYS:
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            raise ContractError(
                file, f"must be a string, got {type(value).__name__}", column=key, rows=where
            )
        values[key] = (value or "").strip()
    if not values["name"]:
        raise ContractError(file, "a scenario without a name", column="name", rows=where)
    if not values["query"]:
        raise ContractError(file, "a scenario without a query", column="query", rows=where)
    check_scenario_name(values["name"], file, where)
    return Scenario(**values)


def check_scenario_name(name: str, file: str = SCENARIOS, where: str | None = None) -> None:
    """Raise unless ``name`` is a scenario slug (:data:`SCENARIO_NAME`)."""
    if not SCENARIO_NAME.fullmatch(name):
        raise ContractError(
            file, f"invalid scenario name {_short(name)}: use {SCENARIO_NAME_RULE}",
            column="name", rows=where or "",
        )  # fmt: skip


# YAML aliases can expand a small file into a huge structure: render an entry for a message
# with bounded depth and length instead of repr()-ing all of it and cutting the string.
def _short(value: Any) -> str:
    short = reprlib.Repr()  # keyword arguments only from Python 3.12
    short.maxlevel, short.maxdict, short.maxlist, short.maxstring = 2, 4, 4, 60
    return short.repr(value)


def _check_unique(file: str, scenarios: list[Scenario]) -> None:
    counts = Counter(s.name for s in scenarios)
    dupes = sorted(name for name, n in counts.items() if n > 1)
    if dupes:
        raise ContractError(file, f"duplicate scenario name(s): {dupes}", column="name")


def _one_line(exc: Exception) -> str:
    # PyYAML messages span several lines with a caret diagram; one line reads better in a CLI.
    return " ".join(str(exc).split())
