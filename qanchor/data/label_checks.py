"""Fatal checks of ``labels.parquet``: label values, known scenarios, one label each, splits."""

from __future__ import annotations

import pandas as pd

from qanchor.data import contract as c
from qanchor.data.validate import format_rows
from qanchor.errors import ContractError


def check_labels(labels: pd.DataFrame, scenario_names: list[str]) -> None:
    """Fatal checks on labels.parquet: values, scenarios, duplicates and splits."""
    file, cols = c.LABELS, list(labels.columns)
    bad = ~labels["label"].isin([0.0, 1.0])  # NaN is not in the set, so nulls fail too
    if bad.any():
        raise ContractError(
            file,
            f"label must be 0 or 1; {int(bad.sum())} row(s) are not",
            column="label",
            rows=format_rows(labels, bad, cols),
        )
    _check_scenarios_known(labels, scenario_names)
    dup = labels.duplicated(["user_id", "scenario"], keep=False)
    if dup.any():
        raise ContractError(
            file,
            f"duplicate (user_id, scenario) rows: {int(dup.sum())} rows; keep one label each",
            column="scenario",
            rows=format_rows(labels, dup, cols),
        )
    if "split" in labels.columns:
        _check_splits(labels)


def _check_scenarios_known(labels: pd.DataFrame, names: list[str]) -> None:
    bad = ~labels["scenario"].isin(names)
    if bad.any():
        unknown = sorted(labels.loc[bad, "scenario"].fillna("<null>").unique().tolist())
        raise ContractError(
            c.LABELS,
            f"scenario(s) not defined in {c.SCENARIOS}: {unknown[:20]}; defined: {names}",
            column="scenario",
            rows=format_rows(labels, bad, labels.columns),
        )


def _check_splits(labels: pd.DataFrame) -> None:
    split = labels["split"]
    bad = split.notna() & ~split.isin(c.SPLITS)
    if bad.any():
        raise ContractError(
            c.LABELS,
            f"invalid split value(s) {sorted(split[bad].unique().tolist())[:10]}; "
            f"allowed: {list(c.SPLITS)} or null",
            column="split",
            rows=format_rows(labels, bad, labels.columns),
        )
    # A user belongs to one split; a null next to a value counts as a disagreement because
    # the builder would otherwise have to guess which one the owner meant.
    per_user = split.fillna("<null>").groupby(labels["user_id"]).transform("nunique")
    mixed = per_user.gt(1)
    if mixed.any():
        users = labels.loc[mixed, "user_id"].unique()
        raise ContractError(
            c.LABELS,
            f"{len(users)} user(s) have different split values across their rows "
            f"(e.g. {users[0]!r}); give each user one split",
            column="split",
            rows=format_rows(labels, labels["user_id"].isin(users[:2]), labels.columns),
        )
