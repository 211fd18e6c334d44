"""The synthetic world's scenarios: binary labels driven by different mixes of latents.

Each scenario draws its label through a logistic link from its own mix of traits, episodes and
activity (``drivers``), so the label vectors differ and each needs different parts of a user's
history: recent lending content, a 90-day decline, late-night habits, travel searches before a
trip... Intercepts are calibrated once on a fixed reference population to hit each target rate.

Example::

    labels = draw_labels(lat, np.random.default_rng(1), label_noise=0.07)  # (users, scenarios)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from qanchor.data.synth_world import (
    AFF,
    CHURN,
    DEAL,
    DIG,
    IMP,
    INV,
    NIGHT,
    PAR,
    STR,
    TRV,
    sample_latents,
    sigmoid,
)

GROUPS = ("engagement", "risk", "marketing")
_REFERENCE_SEED = 20260101  # fixed population used to calibrate label base rates
_REFERENCE_USERS = 20000


@dataclass(frozen=True)
class ScenarioDef:
    """One binary scenario of the synthetic world.

    Attributes:
        name: snake_case identifier (the ``scenario`` value in ``labels.parquet``).
        group: One of ``GROUPS``.
        query: The natural-language anchor question.
        description: What a positive label means, for people.
        drivers: Latent column -> weight in the label's logit (the ground truth, for tests).
        rate: Target share of positive labels.
        signals: Where the drivers show up in the data (documentation only).
    """

    name: str
    group: str
    query: str
    description: str
    drivers: dict[str, float]
    rate: float
    signals: str = ""

    def as_contract(self) -> dict[str, str]:
        """The ``scenarios.yaml`` entry (no generator internals)."""
        return {
            "name": self.name,
            "query": self.query,
            "description": self.description,
            "group": self.group,
        }


# Each scenario reads different traits *and* different sources (its ``signals``).
SCENARIOS = (
    ScenarioDef(
        name="cash_loan_default",
        group="risk",
        query="Will this user miss a repayment on a cash loan in the next 30 days?",
        description="Positive: a cash-loan instalment goes overdue within the next 30 days.",
        drivers={"cash_crunch": 2.6, STR: 1.1, AFF: -0.6, IMP: 0.3},
        rate=0.1,
        signals=(
            "recent late fees, loan repayments and cash advances in bill; lending apps, loan "
            "searches and credit pages, surging in the last weeks; credit line in profile"
        ),
    ),
    ScenarioDef(
        name="credit_overspend",
        group="risk",
        query="Will this user use up more than 90% of their credit line next month?",
        description="Positive: credit utilisation exceeds 90% at any point in the next month.",
        drivers={IMP: 1.5, STR: 0.6, DEAL: -0.7, AFF: -0.5},
        rate=0.15,
        signals=(
            "fashion and electronics bills paid later; flash-sale pages and mini-program; few "
            "coupon pages; credit line in profile"
        ),
    ),
    ScenarioDef(
        name="gambling_risk",
        group="risk",
        query="Is this user at risk of problem spending on lottery and mobile games?",
        description="Positive: lottery and game spending exceeds a risk threshold next month.",
        drivers={NIGHT: 1.6, STR: 0.8, IMP: 0.4, PAR: -0.6},
        rate=0.07,
        signals=("lottery and game merchants, game apps and mini-games; late-night sessions"),
    ),
    ScenarioDef(
        name="churn_next_month",
        group="engagement",
        query="Will this user stop using the app next month?",
        description="Positive: no active day in the month after the history window.",
        drivers={"activity_trend": -2.0, CHURN: 0.8, DIG: -0.5},
        rate=0.2,
        signals=(
            "activity declining over the 90 days in every source; notification-off and close- "
            "account pages and searches"
        ),
    ),
    ScenarioDef(
        name="daily_active_next_month",
        group="engagement",
        query="Will this user open the app on most days next month?",
        description="Positive: active on at least 20 of the next 30 days.",
        drivers={"activity_level": 1.6, DIG: 0.8, "activity_trend": 1.0},
        rate=0.3,
        signals=("overall volume and its trend; mini-program and page habits"),
    ),
    ScenarioDef(
        name="live_stream_engagement",
        group="engagement",
        query="Will this user watch a live-stream shopping event next week?",
        description="Positive: watches at least one live-stream sale in the next 7 days.",
        drivers={IMP: 1.0, NIGHT: 0.8, DIG: 0.8, PAR: -0.4},
        rate=0.2,
        signals=("live-stream pages, mini-program and apps; flash sales; late-night sessions"),
    ),
    ScenarioDef(
        name="travel_package_purchase",
        group="marketing",
        query="Will this user buy a travel package in the next month?",
        description="Positive: books a flight-plus-hotel package within the next month.",
        drivers={"trip_planned": 3.0, TRV: 1.0, AFF: 0.5},
        rate=0.1,
        signals=(
            "airline, hotel and tour merchants, travel searches, pages and apps, surging in the "
            "weeks before a trip"
        ),
    ),
    ScenarioDef(
        name="wealth_product_uptake",
        group="marketing",
        query="Will this user buy a wealth-management fund product?",
        description="Positive: subscribes to a fund product after a targeted offer.",
        drivers={INV: 1.8, AFF: 0.9, STR: -0.5},
        rate=0.15,
        signals=(
            "wealth pages, fund mini-program and apps, investment searches and transfers; "
            "income band in profile"
        ),
    ),
    ScenarioDef(
        name="coupon_redemption",
        group="marketing",
        query="Will this user redeem a supermarket coupon this month?",
        description="Positive: redeems a pushed supermarket coupon within the campaign month.",
        drivers={DEAL: 1.7, PAR: 0.7, AFF: -0.4},
        rate=0.35,
        signals=(
            "coupon and points pages and mini-programs, deal apps, coupon searches, grocery bills"
        ),
    ),
    ScenarioDef(
        name="kids_education_signup",
        group="marketing",
        query="Will this user sign up for a children's education course?",
        description="Positive: enrols a child in a paid course after seeing an offer.",
        drivers={PAR: 2.0, AFF: 0.6},
        rate=0.08,
        signals=(
            "baby and education merchants, kids mini-programs, apps and searches; age and "
            "marital status in profile"
        ),
    ),
    ScenarioDef(
        name="premium_membership_upgrade",
        group="marketing",
        query="Will this user upgrade to the paid premium membership?",
        description="Positive: accepts a premium membership upgrade offer.",
        drivers={AFF: 1.5, DIG: 0.7, CHURN: -0.6},
        rate=0.1,
        signals=(
            "dining and luxury bills, credit-card payments, larger amounts, membership pages; "
            "city tier and income in profile"
        ),
    ),
    ScenarioDef(
        name="health_insurance_purchase",
        group="marketing",
        query="Will this user buy a health insurance plan in the next month?",
        description="Positive: buys a health insurance policy within the next month.",
        drivers={PAR: 0.9, AFF: 0.7, IMP: -0.8, NIGHT: -0.5},
        rate=0.12,
        signals=(
            "insurance bills, pages and mini-program; pharmacy; little impulse shopping; "
            "daytime use"
        ),
    ),
)


def scenario_scores(lat: pd.DataFrame, signal: float = 1.0) -> np.ndarray:
    """Each user's label logit (without intercept) per scenario, shape (users, scenarios)."""
    per_scenario = [sum(w * lat[c].to_numpy() for c, w in s.drivers.items()) for s in SCENARIOS]
    return signal * np.stack(per_scenario, axis=1)


@lru_cache(maxsize=8)
def _intercepts(signal: float) -> np.ndarray:
    """Intercepts that hit each scenario's target rate on a fixed reference population.

    Calibrating on a fixed population (not the one being generated) keeps a user's label
    distribution independent of how many other users are generated alongside.
    """
    ref = sample_latents(np.random.default_rng(_REFERENCE_SEED), _REFERENCE_USERS, days=90)
    scores = scenario_scores(ref, signal)
    target = np.array([s.rate for s in SCENARIOS])
    lo, hi = np.full(len(SCENARIOS), -30.0), np.full(len(SCENARIOS), 30.0)
    for _ in range(60):  # bisection: the mean rate is monotone in the intercept
        mid = (lo + hi) / 2
        too_high = sigmoid(scores + mid).mean(axis=0) > target
        hi, lo = np.where(too_high, mid, hi), np.where(too_high, lo, mid)
    return (lo + hi) / 2


def draw_labels(
    lat: pd.DataFrame, rng: np.random.Generator, label_noise: float, signal: float = 1.0
) -> np.ndarray:
    """Binary labels per user and scenario, shape (users, scenarios), dtype int64.

    A label is a Bernoulli draw from the logistic link; then, with probability ``label_noise``,
    it is replaced by a fresh draw at the scenario's base rate. Replacement rather than a plain
    flip keeps rare scenarios rare (a 7% flip would put a 5%-rate scenario at ~12%).
    """
    p = sigmoid(scenario_scores(lat, signal) + _intercepts(float(signal)))
    labels = rng.random(p.shape) < p
    rates = np.array([s.rate for s in SCENARIOS])
    noisy = rng.random(p.shape) < label_noise
    labels = np.where(noisy, rng.random(p.shape) < rates, labels)
    return labels.astype(np.int64)
