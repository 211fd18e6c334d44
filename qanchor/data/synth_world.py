"""The synthetic world's people: latent traits, activity, timing and episodes.

Every synthetic user is a vector of correlated latent traits (affluence, financial stress, ...)
plus a few derived latents that make *time* matter:

- ``activity_level`` (log scale, heavy-tailed across users) and ``activity_trend`` (the log-ratio of
  activity at the end vs the start of the history window; churners decline);
- ``night_share``: the chance that a session happens late at night;
- two episodes with an onset day: ``trip_planned`` (travel content surges in the last weeks) and
  ``cash_crunch`` (lending content surges), so recency carries signal that 90-day averages dilute.

The rest of the world builds on these: ``synth_scenarios`` (labels from different mixes of the
latents), ``synth_tables``/``synth_vocab`` (what each source can say and who says it),
``synth_timeline`` (when), ``synth_sources``/``synth_apps`` (the event sources) and
``synth_profile`` (the tabular source).

Example::

    lat = sample_latents(np.random.default_rng(0), n=1000, days=90)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRAITS = (
    "affluence",
    "financial_stress",
    "digital_engagement",
    "travel_affinity",
    "parenting",
    "investment_interest",
    "impulsiveness",
    "deal_seeking",
    "churn_propensity",
    "night_owl",
)
AFF, STR, DIG, TRV, PAR, INV, IMP, DEAL, CHURN, NIGHT = TRAITS

# Plausible dependencies between traits (the rest are independent). Correlated traits make the
# scenarios overlap partially, as real ones do, without making any two of them the same task.
_CORRELATIONS = {
    (AFF, STR): -0.4,
    (AFF, INV): 0.4,
    (AFF, TRV): 0.3,
    (AFF, DEAL): -0.2,
    (STR, IMP): 0.3,
    (DIG, CHURN): -0.3,
    (DIG, NIGHT): 0.2,
    (PAR, NIGHT): -0.2,
    (PAR, DEAL): 0.2,
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def trait_correlation() -> np.ndarray:
    """The trait correlation matrix, in ``TRAITS`` order."""
    corr = np.eye(len(TRAITS))
    for (a, b), rho in _CORRELATIONS.items():
        i, j = TRAITS.index(a), TRAITS.index(b)
        corr[i, j] = corr[j, i] = rho
    return corr


def sample_latents(rng: np.random.Generator, n: int, days: int) -> pd.DataFrame:
    """Draw ``n`` users' latent traits, activity, trend, night share and episodes.

    Args:
        rng: The random generator (all draws happen in a fixed order, so a seed fixes the result).
        n: Number of users.
        days: Length of the history window; episode onsets are placed relative to its end.

    Returns:
        One row per user: the ``TRAITS`` columns (standard normal, correlated), ``activity_level``,
        ``activity_trend``, ``night_share``, ``trip_planned``/``cash_crunch`` (0/1) and their
        onset days (NaN without an episode).
    """
    z = rng.standard_normal((n, len(TRAITS))) @ np.linalg.cholesky(trait_correlation()).T
    lat = pd.DataFrame(z, columns=list(TRAITS))
    # Lognormal activity with sigma ~1 gives the heavy tail (a few power users, many light ones);
    # the offset keeps the mean multiplier at 1 so event totals stay on budget.
    level_noise = 0.9 * rng.standard_normal(n)
    lat["activity_level"] = level_noise + 0.4 * lat[DIG] - 0.5 * (0.81 + 0.16)
    # Churners' activity decays by up to ~exp(-1.8) over the history window (and keeps decaying
    # in the future period); everyone else is roughly flat, with some noise either way.
    decline = 1.8 * sigmoid(2.5 * (lat[CHURN].to_numpy() - 0.8))
    lat["activity_trend"] = -decline + 0.25 * rng.standard_normal(n)
    lat["night_share"] = sigmoid(1.4 * lat[NIGHT].to_numpy() - 1.5)
    trip = rng.random(n) < sigmoid(1.3 * lat[TRV].to_numpy() + 0.4 * lat[AFF].to_numpy() - 2.3)
    trip_onset = days - 30 + 23 * rng.random(n)  # 7..30 days before the end of history
    crunch = rng.random(n) < sigmoid(1.4 * lat[STR].to_numpy() - 2.2)
    crunch_onset = days - 45 + 40 * rng.random(n)  # 5..45 days before the end of history
    lat["trip_planned"] = trip.astype(np.float64)
    lat["trip_onset_day"] = np.where(trip, np.clip(trip_onset, 0, None), np.nan)
    lat["cash_crunch"] = crunch.astype(np.float64)
    lat["crunch_onset_day"] = np.where(crunch, np.clip(crunch_onset, 0, None), np.nan)
    return lat
