"""The tabular source of the synthetic world: one profile row per user.

Profile columns are noisy views of the latent traits (income band and city tier of affluence,
age of parenting, account age of churn propensity...), with the kind of gaps real profiles have.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qanchor.data.synth_world import AFF, CHURN, DIG, IMP, INV, NIGHT, PAR, STR, sigmoid

INCOME_BANDS = ("<3k", "3k-8k", "8k-15k", "15k-30k", "30k+")
OCCUPATIONS = (
    "student",
    "office worker",
    "self-employed",
    "manager",
    "freelancer",
    "gig worker",
    "retired",
)
# Share of missing values per column: profiles are filled in by people, partly.
_MISSING = {
    "age": 0.02,
    "gender": 0.03,
    "income_band": 0.08,
    "marital_status": 0.05,
    "credit_line": 0.12,
}


def make_profiles(
    lat: pd.DataFrame, rng: np.random.Generator, user_ids: np.ndarray
) -> pd.DataFrame:
    """Draw the profile table.

    Args:
        lat: Latent traits from ``sample_latents``.
        rng: The random generator.
        user_ids: The user id per row of ``lat``.

    Returns:
        ``user_id, age, gender, city_tier, income_band, occupation, marital_status,
        account_age_days, credit_line``; some values missing.
    """
    n = len(lat)
    t = {c: lat[c].to_numpy() for c in lat.columns}
    noise = rng.standard_normal((n, 6))
    age = 36 + 6 * t[PAR] + 3 * t[AFF] + 3 * t[INV] - 4 * t[NIGHT] - 2 * t[DIG] + 8 * noise[:, 0]
    age = np.clip(np.round(age), 18, 75)
    income = t[AFF] + 0.3 * t[INV] + 0.02 * (age - 36) + 0.5 * noise[:, 1]
    city = 0.8 * t[AFF] + 0.2 * t[DIG] + 0.7 * noise[:, 2]
    married = rng.random(n) < sigmoid(2.0 * t[PAR] + 0.08 * (age - 32))
    account = np.exp(6.6 + 0.6 * noise[:, 3] - 0.25 * t[CHURN])
    credit = np.round(np.exp(8.6 + 0.6 * t[AFF] - 0.3 * t[STR] + 0.4 * noise[:, 4]) / 100) * 100
    columns = {
        "user_id": user_ids,
        "age": age,
        "gender": np.where(rng.random(n) < 0.5, "female", "male").astype(object),
        "city_tier": (4 - np.digitize(city, [-0.9, 0.0, 0.9])).astype(np.int64),
        "income_band": np.array(INCOME_BANDS, dtype=object)[
            np.digitize(income, [-1.2, -0.3, 0.5, 1.4])
        ],
        "occupation": _occupations(rng, t, age),
        "marital_status": np.where(married, "married", "single").astype(object),
        "account_age_days": np.clip(np.round(account), 30, 4000).astype(np.int64),
        "credit_line": credit.astype(np.float64),
    }
    return pd.DataFrame(_blank_out(columns, rng))


def _occupations(rng: np.random.Generator, t: dict[str, np.ndarray], age: np.ndarray) -> np.ndarray:
    """Occupation by a noisy argmax over plausible scores (Gumbel-max = a softmax draw)."""
    scores = np.stack(
        [
            3.0 - 0.4 * (age - 18),  # student
            np.ones_like(age),  # office worker
            0.3 + 0.4 * t[AFF] + 0.3 * t[IMP],  # self-employed
            -0.5 + 1.0 * t[AFF] + 0.02 * (age - 30),  # manager
            0.5 * t[NIGHT] + 0.3 * t[DIG],  # freelancer
            -0.3 + 0.8 * t[STR] - 0.5 * t[AFF],  # gig worker
            0.5 * (age - 62),  # retired
        ],
        axis=1,
    )
    pick = np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)
    return np.array(OCCUPATIONS, dtype=object)[pick]


def _blank_out(columns: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Remove a realistic share of values per column (NaN for numbers, None for strings)."""
    out = dict(columns)
    for column, share in _MISSING.items():
        values = out[column]
        gone = rng.random(len(values)) < share
        out[column] = np.where(gone, None if values.dtype == object else np.nan, values)
    return out
