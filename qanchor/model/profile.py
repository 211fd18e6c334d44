"""Featurise the tabular source into a fixed-width float vector.

The tabular source is the user's profile plus the build's activity aggregates (per-source counts,
recencies, amounts: :func:`tabular_frame`). The paper feeds "one tabular feature vector"; the
aggregates matter because the event tokens hold only each source's most recent events, so
without them the model cannot tell a daily user from one who came back once.

Fitted on training users only and stored with the model, so serving featurises exactly as
training did: numeric columns are standardised (missing -> 0 plus a missing flag), heavy-tailed
non-negative ones (counts, amounts) after log1p; categorical columns are one-hot over their most
frequent values plus an "other" slot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

META_COLUMNS = ("user_id", "snapshot_ts")


@dataclass
class ProfileFeaturizer:
    """Column statistics learned from training profiles; JSON-serialisable."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (mean, std)
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> kept values
    log1p: list[str] = field(default_factory=list)  # numeric columns standardised after log1p

    @property
    def dim(self) -> int:
        return 2 * len(self.numeric) + sum(len(v) + 1 for v in self.categorical.values())

    @classmethod
    def fit(cls, profiles: pd.DataFrame | None, max_categories: int = 20) -> ProfileFeaturizer:
        """Learn statistics from a profile frame (None: no tabular source)."""
        fz = cls()
        if profiles is None:
            return fz
        for col in profiles.columns:
            if col in META_COLUMNS:
                continue
            s = profiles[col]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                x = s.astype(float)
                if _heavy_tailed(x):
                    fz.log1p.append(col)
                    x = np.log1p(x)
                std = float(x.std()) if x.notna().sum() > 1 else 1.0
                fz.numeric[col] = (
                    float(x.mean()) if x.notna().any() else 0.0,
                    std if std > 0 else 1.0,
                )
            else:
                top = s.dropna().astype(str).value_counts().head(max_categories)
                fz.categorical[col] = sorted(top.index.tolist())
        return fz

    def transform(self, profiles: pd.DataFrame) -> np.ndarray:
        """[n_rows, dim] float32 features in a fixed column order."""
        parts = []
        for col, (mean, std) in self.numeric.items():
            x = (
                profiles[col].astype(float)
                if col in profiles
                else pd.Series(np.nan, index=profiles.index)
            )
            if col in self.log1p:
                x = np.log1p(x.clip(lower=0))
            parts += [((x - mean) / std).fillna(0.0).to_numpy(), x.isna().to_numpy(float)]
        for col, values in self.categorical.items():
            s = (
                profiles[col].astype(str)
                if col in profiles
                else pd.Series("", index=profiles.index)
            )
            onehot = np.stack(
                [(s == v).to_numpy(float) for v in values] + [(~s.isin(values)).to_numpy(float)], 1
            )
            parts += list(onehot.T)
        if not parts:
            return np.zeros((len(profiles), 0), np.float32)
        return np.stack(parts, axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ProfileFeaturizer:
        return cls(
            {k: tuple(v) for k, v in d.get("numeric", {}).items()},
            dict(d.get("categorical", {})),
            list(d.get("log1p", [])),
        )


def _heavy_tailed(x: pd.Series) -> bool:
    """Non-negative with a long right tail (skewness > 2): counts and amounts."""
    x = x.dropna()
    return len(x) > 2 and bool(x.min() >= 0) and float(x.skew()) > 2.0


def tabular_frame(*tables: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per-user tables joined on ``user_id`` (outer join), columns in argument order.

    The one join of the aggregates and the profile. The model's tabular source is
    ``tabular_frame(profiles, aggregates)`` (profile columns first); the GBDT baseline and input
    drift join ``aggregates, profiles``. ``snapshot_ts`` is dropped: every table of a build
    carries it, and it is no feature. None tables are skipped; all None gives None.
    """
    frames = [t.drop(columns=["snapshot_ts"], errors="ignore") for t in tables if t is not None]
    if not frames:
        return None
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on="user_id", how="outer")
    return out


def built_tables(
    built_dir: str | Path, users: list[str] | None = None
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """A built dataset's ``(profiles, aggregates)`` tables, None where the file is absent;
    with ``users``, only their rows."""
    from qanchor.data.user_rows import read_user_rows

    def read(path: Path) -> pd.DataFrame | None:
        if not path.is_file():
            return None
        return pd.read_parquet(path) if users is None else read_user_rows(path, users)

    profiles = read(Path(built_dir) / "profiles.parquet")
    aggregates = read(Path(built_dir) / "aggregates.parquet")
    return profiles, aggregates
