"""Featurise the tabular profile into a fixed-width float vector (the tabular source).

Fitted on training users only and stored with the model, so serving featurises exactly as
training did: numeric columns are standardised (missing -> 0 plus a missing flag), categorical
columns are one-hot over their most frequent values plus an "other" slot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

META_COLUMNS = ("user_id", "snapshot_ts")


@dataclass
class ProfileFeaturizer:
    """Column statistics learned from training profiles; JSON-serialisable."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (mean, std)
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> kept values

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
            {k: tuple(v) for k, v in d.get("numeric", {}).items()}, dict(d.get("categorical", {}))
        )
