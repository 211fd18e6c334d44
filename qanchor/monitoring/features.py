"""Input-feature drift: the built datasets' per-user aggregates and profile, reference vs current.

The reference is the build the model was trained on (its snapshot window), the current one the
latest build; both are ``qanchor data build`` outputs, so the columns are the same by contract:
``aggregates.parquet`` (``<source>__count``, ``__value_mean``, ...) and ``profiles.parquet``.
Every column is compared by Evidently's per-column drift methods; the input counts as drifted
when the share of drifted columns reaches ``DriftConfig.drift_share``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qanchor.errors import QAnchorError
from qanchor.model.profile import built_tables, tabular_frame
from qanchor.monitoring.config import DriftConfig

_MAX_CATEGORY_INTS = 10  # an integer column with at most this many values is a category (tiers)


def load_features(built_dir: str | Path) -> pd.DataFrame:
    """One row per user: aggregates joined with the profile (if any), indexed by ``user_id``.

    The aggregates' ``snapshot_ts`` is kept (first column) for :func:`snapshot_time`.
    """
    profiles, aggregates = built_tables(built_dir)
    if aggregates is None:
        raise QAnchorError(
            f"{built_dir}: no aggregates.parquet (is it a `qanchor data build` output?)"
        )
    frame = tabular_frame(aggregates, profiles).set_index("user_id")
    frame.insert(0, "snapshot_ts", aggregates.set_index("user_id")["snapshot_ts"])
    return frame


def snapshot_time(frame: pd.DataFrame) -> str | None:
    """The snapshot time of a feature frame (ISO), if it records one."""
    if "snapshot_ts" not in frame or frame.empty:
        return None
    return pd.Timestamp(frame["snapshot_ts"].max()).isoformat()


def split_columns(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig
) -> tuple[list[str], list[str], dict[str, str]]:
    """Numeric and categorical columns to compare, and the skipped ones with the reason."""
    wanted = cfg.columns or [c for c in reference.columns if c != "snapshot_ts"]
    numeric, categorical, skipped = [], [], {}
    for col in wanted:
        if col in cfg.exclude_columns:
            continue
        if col not in reference or col not in current:
            skipped[col] = "missing in " + ("reference" if col not in reference else "current")
        elif reference[col].isna().all() or current[col].isna().all():
            skipped[col] = "no values in " + (
                "reference" if reference[col].isna().all() else "current"
            )
        elif _is_categorical(reference[col]):
            categorical.append(col)
        else:
            numeric.append(col)
    return numeric, categorical, skipped


def _is_categorical(s: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return True
    return pd.api.types.is_integer_dtype(s) and s.nunique() <= _MAX_CATEGORY_INTS


def prepare(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], cfg: DriftConfig
) -> pd.DataFrame:
    """The compared view of a frame: a row sample, log1p on non-negative numbers, text categories."""
    if cfg.sample_size and len(frame) > cfg.sample_size:
        frame = frame.sample(cfg.sample_size, random_state=cfg.seed)
    out = frame[numeric].astype(np.float64)
    if cfg.log_values:
        nonneg = [c for c in numeric if (out[c].dropna() >= 0).all()]
        out[nonneg] = np.log1p(out[nonneg])
    for col in categorical:
        # One representation for both sides: Evidently compares categories as strings.
        out[col] = frame[col].astype("string").fillna("(missing)").astype(str)
    # A plain range index: Evidently bins the index for its plots and cannot bin user ids.
    return out.reset_index(drop=True)


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig
) -> tuple[Any, dict]:
    """Compare the feature frames with Evidently's ``DataDriftPreset``.

    Returns:
        ``(snapshot, result)``; ``result`` has ``drifted`` (share >= ``drift_share``),
        ``drift_share``, ``drifted_count``, ``columns_total``, ``threshold_share``, ``columns``
        (per column: drifted, score, method, threshold, and the reference/current mean or the
        most changed category, to say by how much) and ``skipped``.
    """
    from evidently.presets import DataDriftPreset

    from qanchor.monitoring import reports

    numeric, categorical, skipped = split_columns(reference, current, cfg)
    if not numeric and not categorical:
        raise QAnchorError("feature drift: no column to compare (check DriftConfig.columns)")
    ref, cur = (prepare(f, numeric, categorical, cfg) for f in (reference, current))
    preset = DataDriftPreset(
        columns=numeric + categorical, drift_share=cfg.drift_share,
        num_method=cfg.num_method, num_threshold=cfg.num_threshold,
        cat_method=cfg.cat_method, cat_threshold=cfg.cat_threshold,
        per_column_method=cfg.per_column_method or None,
        per_column_threshold=cfg.per_column_threshold or None,
    )  # fmt: skip
    snap = reports.run_report([preset], ref, cur, numeric, categorical, tags=["features"])
    count = reports.drifted_count(snap)[0]
    columns = reports.column_drifts(snap)
    for col, entry in columns.items():
        entry.update(_effect(reference[col], current[col], col in categorical))
    return snap, {
        "drifted": count["share"] >= cfg.drift_share,
        "drift_share": count["share"],
        "drifted_count": count["count"],
        "columns_total": len(numeric) + len(categorical),
        "threshold_share": cfg.drift_share,
        "rows": {"reference": len(ref), "current": len(cur)},
        "columns": columns,
        "skipped": skipped,
    }


def _effect(ref: pd.Series, cur: pd.Series, categorical: bool) -> dict[str, Any]:
    """How much a column moved, in its own units (the drift score alone says little to a reader)."""
    if not categorical:
        return {"reference_mean": _num(ref.mean()), "current_mean": _num(cur.mean())}
    a = ref.astype("string").value_counts(normalize=True)
    b = cur.astype("string").value_counts(normalize=True)
    diff = b.sub(a, fill_value=0.0)
    top = str(diff.abs().idxmax())
    return {
        "category": top,
        "reference_share": float(a.get(top, 0.0)),
        "current_share": float(b.get(top, 0.0)),
    }


def _num(x: float) -> float | None:
    return None if pd.isna(x) else float(x)
