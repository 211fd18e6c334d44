"""Load a dataset directory into a validated, cleaned :class:`Dataset`.

Fatal problems raise :class:`~qanchor.errors.ContractError`; recoverable bad rows are moved to
``Dataset.quarantine`` with a reason (never dropped silently) and can be written out with
:func:`write_quarantine`. The order matters: bad rows are quarantined first, then users are
linked across files, and only then is "no events at all" judged.

Example::

    ds = load_dataset("data/toy")
    write_quarantine(ds, Path("runs/build"))   # -> runs/build/quarantine/events.parquet, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.data import contract as c
from qanchor.data import validate as v
from qanchor.data.contract import Scenario, read_scenarios
from qanchor.data.label_checks import check_labels
from qanchor.data.sources import SourceSpec, read_sources, spec_for
from qanchor.data.timestamps import parse_ts, sort_keys, sort_rows
from qanchor.errors import ContractError

_EVENT_KINDS = {"user_id": "string", "ts": "timestamp", "source": "string", "text": "string",
                "value": "number"}  # fmt: skip
_LABEL_KINDS = {"user_id": "string", "scenario": "string", "label": "label", "split": "string"}
_QA_KINDS = {"user_id": "string", "query": "string", "answer": "string"}


@dataclass
class Dataset:
    """A dataset that meets the input contract.

    Attributes:
        root: The dataset directory.
        events: user_id, ts (datetime64, UTC), source, text, value (float64, NaN if missing);
            sorted by (user_id, ts) with a RangeIndex.
        labels: user_id, scenario, label (int8 0/1), split (str, or null when not given);
            sorted by (user_id, scenario) with a RangeIndex.
        scenarios: The scenarios of ``scenarios.yaml`` in file order.
        profiles: user_id (unique) plus feature columns, or None without profiles.parquet.
        qa: user_id, query, answer, or None without qa.parquet.
        quarantine: Source file name -> its quarantined rows (the contract columns as read,
            unparseable ``ts`` kept as the original string) plus a ``reason`` column; the index,
            named ``row``, is the 0-based row number in the file. Only files with bad rows.
        source_specs: The entries of ``sources.yaml`` (empty without the file), in file order;
            :meth:`source_spec` fills in the neutral default for the others.
        nulled: File -> column -> number of infinite numbers set to null (``inf`` in a
            profile would otherwise reach pretraining text as "income: inf").
        links: Contract file -> where its symbolic link points, for files that are links.
    """

    root: Path
    events: pd.DataFrame
    labels: pd.DataFrame
    scenarios: list[Scenario]
    profiles: pd.DataFrame | None = None
    qa: pd.DataFrame | None = None
    quarantine: dict[str, pd.DataFrame] = field(default_factory=dict)
    source_specs: dict[str, SourceSpec] = field(default_factory=dict)
    nulled: dict[str, dict[str, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """Sorted distinct event sources (whatever the data holds)."""
        return sorted(self.events["source"].unique().tolist())

    def source_spec(self, name: str) -> SourceSpec:
        """What source ``name`` and its values are (neutral when ``sources.yaml`` is silent)."""
        return spec_for(self.source_specs, name)

    def quarantine_counts(self) -> dict[str, dict[str, int]]:
        """File -> reason -> number of quarantined rows."""
        return {
            file: {str(k): int(n) for k, n in df["reason"].value_counts().sort_index().items()}
            for file, df in self.quarantine.items()
        }


def load_dataset(path: str | Path, horizon: pd.Timestamp | None = None) -> Dataset:
    """Read, validate and clean the dataset in directory ``path``.

    Args:
        path: A directory laid out as in DESIGN.md section 3.
        horizon: Events dated after it are quarantined (``timestamp after the horizon``):
            clock errors and placeholder dates would otherwise move a derived cutoff.

    Returns:
        The cleaned Dataset, with bad rows in ``quarantine``.

    Raises:
        ContractError: A fatal problem; the message names the file, column and example rows.
    """
    root = Path(path)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "not found"
        raise ContractError(str(root), f"dataset directory {what}: expected a directory with "
                            f"{', '.join(c.REQUIRED_FILES)}")  # fmt: skip
    scenarios = read_scenarios(root / c.SCENARIOS)
    specs = read_sources(root / c.SOURCE_SPECS)  # before the parquet files: a typo fails fast
    raw_events, ts, codes, rows = _read_events(root, horizon)
    raw_labels = _read_labels(root, [s.name for s in scenarios])

    rows = _drop_unlabelled(raw_events, raw_labels, codes, rows)
    events = _take_events(raw_events, ts, rows)
    # The other direction of linking users: a label needs at least one kept event.
    no_events = (~raw_labels["user_id"].isin(events["user_id"].unique())).to_numpy()
    labels = raw_labels.loc[~no_events].sort_values(["user_id", "scenario"])

    quarantine = {
        c.EVENTS: _quarantined(raw_events, codes, v.EVENT_REASONS),
        c.LABELS: _quarantined(raw_labels, no_events.astype(np.int8), ("", c.NO_EVENTS)),
    }
    qa = _read_qa(root, quarantine)
    quarantine = {file: df for file, df in quarantine.items() if len(df)}
    profiles = _read_profiles(root)
    nulled = {c.EVENTS: _null_infinite(events, ["value"])}
    if profiles is not None:
        nulled[c.PROFILES] = _null_infinite(profiles, [col for col in profiles if col != "user_id"])
    nulled = {file: cols for file, cols in nulled.items() if cols}
    labels = labels.reset_index(drop=True)
    return Dataset(root, events, labels, scenarios, profiles, qa, quarantine, specs, nulled,
                   _links(root))  # fmt: skip


def _null_infinite(df: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    """Set ±inf in the numeric ``columns`` of ``df`` to NaN (in place); column -> count."""
    counts = {}
    for col in columns:
        if col in df.columns and pd.api.types.is_float_dtype(df[col]):
            inf = np.isinf(df[col].to_numpy())
            if inf.any():
                df.loc[inf, col] = np.nan
                counts[col] = int(inf.sum())
    return counts


def _links(root: Path) -> dict[str, str]:
    """Contract files (or their parts) that are symbolic links, and where they point.

    Links are followed (a large file shared between datasets is a fair use); the build
    report lists them, so a dataset that reads data from elsewhere says so.
    """
    out = {}
    for file in (c.EVENTS, c.LABELS, c.PROFILES, c.QA, c.SCENARIOS, c.SOURCE_SPECS):
        path = root / file
        parts = [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
        for p in parts:
            if p.is_symlink():
                out[p.relative_to(root).as_posix()] = str(p.resolve())
    return out


def write_quarantine(ds: Dataset, out_dir: Path) -> dict[str, int]:
    """Write each file's quarantined rows to ``out_dir/quarantine/<file stem>.parquet``.

    Files without bad rows are not written (and a stale file from an earlier run is removed,
    so the directory always describes ``ds``).

    Returns:
        File name -> number of quarantined rows, for every contract parquet file.
    """
    qdir = Path(out_dir) / "quarantine"
    counts: dict[str, int] = {}
    for file in (c.EVENTS, c.LABELS, c.PROFILES, c.QA):
        df = ds.quarantine.get(file)
        target = qdir / f"{Path(file).stem}.parquet"
        counts[file] = 0 if df is None else len(df)
        if counts[file]:
            qdir.mkdir(parents=True, exist_ok=True)
            df.to_parquet(target)
        else:
            target.unlink(missing_ok=True)
    return counts


def _read_events(
    root: Path, horizon: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.Series, np.ndarray, np.ndarray]:
    """Raw events, parsed UTC ts, a reason code per row, and the kept rows in sorted order.

    Reason codes index ``validate.EVENT_REASONS`` (0 = kept so far); the kept positions are
    sorted by (user_id, ts) already, because the duplicate check needs that order anyway.
    """
    table = v.read_table(root, c.EVENTS, list(_EVENT_KINDS), required=True)
    v.check_types(table, c.EVENTS, _EVENT_KINDS)
    raw = v.to_frame(table, _EVENT_KINDS)
    if raw.empty:
        raise ContractError(c.EVENTS, "no events at all: the file has no rows")
    v.require_non_null(raw, c.EVENTS, "user_id")
    ts = parse_ts(raw["ts"])
    codes = v.row_reasons(raw, ts, horizon)
    keys = sort_keys(raw["user_id"], ts)
    rows = sort_rows(keys, np.flatnonzero(codes == 0))
    codes[v.duplicate_rows(raw, ts, keys, rows)] = v.EVENT_REASONS.index(c.DUPLICATE_EVENT)
    return raw, ts, codes, rows[codes[rows] == 0]


def _drop_unlabelled(
    raw: pd.DataFrame, labels: pd.DataFrame, codes: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Mark kept events of users without labels (in ``codes``) and return the rows left.

    Raises:
        ContractError: No event is left; the message counts the quarantine reasons.
    """
    labelled = raw["user_id"].isin(labels["user_id"].unique()).to_numpy()
    codes[(codes == 0) & ~labelled] = v.EVENT_REASONS.index(c.NO_LABEL)
    rows = rows[codes[rows] == 0]
    if len(rows) == 0:
        n_codes = np.bincount(codes, minlength=len(v.EVENT_REASONS))
        counts = {r: int(n) for r, n in zip(v.EVENT_REASONS, n_codes, strict=True) if r and n}
        hint = f"; check that user_id values match {c.LABELS}" if c.NO_LABEL in counts else ""
        raise ContractError(c.EVENTS, f"no events left after quarantine ({counts}){hint}")
    return rows


def _read_labels(root: Path, scenario_names: list[str]) -> pd.DataFrame:
    """Labels that pass every fatal check, with label as int8 and a split column."""
    table = v.read_table(root, c.LABELS, list(_LABEL_KINDS), required=True)
    v.check_types(table, c.LABELS, _LABEL_KINDS)
    labels = v.to_frame(table, _LABEL_KINDS)
    if labels.empty:
        raise ContractError(c.LABELS, "no labels at all: the file has no rows")
    v.require_non_null(labels, c.LABELS, "user_id")
    check_labels(labels, scenario_names)
    labels["label"] = labels["label"].astype(np.int8)
    if "split" not in labels.columns:
        # Same dtype as a read string column, so downstream code sees one shape either way.
        labels["split"] = pd.Series([None] * len(labels), index=labels.index, dtype=_str_dtype())
    return labels[["user_id", "scenario", "label", "split"]]


def _read_profiles(root: Path) -> pd.DataFrame | None:
    """Profiles (unique user_id, numeric/bool/string features), or None without the file."""
    table = v.read_table(root, c.PROFILES, None, required=False)
    if table is None:
        return None
    kinds = {col: "feature" for col in table.column_names} | {"user_id": "string"}
    v.check_types(table, c.PROFILES, kinds)
    profiles = v.to_frame(table, kinds)
    v.require_non_null(profiles, c.PROFILES, "user_id")
    dup = profiles["user_id"].duplicated(keep=False)
    if dup.any():
        raise ContractError(
            c.PROFILES,
            f"duplicate user_id: {int(dup.sum())} rows; keep one profile row per user",
            column="user_id",
            rows=v.format_rows(profiles, dup, profiles.columns[:6]),
        )
    return profiles


def _read_qa(root: Path, quarantine: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """QA pairs without the empty ones (those go to ``quarantine[qa.parquet]``)."""
    table = v.read_table(root, c.QA, list(_QA_KINDS), required=False)
    if table is None:
        return None
    v.check_types(table, c.QA, _QA_KINDS)
    qa = v.to_frame(table, _QA_KINDS)
    v.require_non_null(qa, c.QA, "user_id")
    bad = (v.blank(qa["query"]) | v.blank(qa["answer"])).to_numpy()
    quarantine[c.QA] = _quarantined(qa, bad.astype(np.int8), ("", c.EMPTY_QA))
    return qa.loc[~bad, list(_QA_KINDS)].reset_index(drop=True)


def _take_events(raw: pd.DataFrame, ts: pd.Series, rows: np.ndarray) -> pd.DataFrame:
    """The clean events frame: positions ``rows`` of ``raw`` in that order, RangeIndex."""
    identity = len(rows) == len(raw) and bool(np.all(rows == np.arange(len(raw))))

    def pick(col: pd.Series) -> pd.Series:
        # A sorted, fully clean file needs no copy of its millions of strings.
        return (col if identity else col.iloc[rows]).reset_index(drop=True)

    value = pick(raw["value"]).astype(np.float64) if "value" in raw.columns else np.nan
    return pd.DataFrame({"user_id": pick(raw["user_id"]), "ts": pick(ts),
                         "source": pick(raw["source"]), "text": pick(raw["text"]),
                         "value": value})  # fmt: skip


def _quarantined(raw: pd.DataFrame, codes: np.ndarray, reasons: tuple[str, ...]) -> pd.DataFrame:
    """Rows with a non-zero reason code plus a ``reason`` column; index = row in the file."""
    bad = codes > 0
    names = np.asarray(reasons, dtype=object)[codes[bad]]
    out = raw.loc[bad].assign(reason=pd.Series(names, index=raw.index[bad]).astype(str))
    out.index.name = "row"
    return out


def _str_dtype() -> object:
    # pandas' default dtype for strings: object on 2.x, str on 3.x.
    return pd.Series(["a"]).dtype
