"""When synthetic events happen: bursty sessions along each user's activity trend.

Times are in seconds since the dataset start. A user's session intensity on day ``t`` is
``rate * exp(trend * t / days)``, so churners thin out over the history window and keep thinning in
the future period. Sessions hold a geometric number of events a few minutes apart (bursts), and
each session's clock time comes from a day-time or a late-night profile according to the user's
night share, which a behaviour shift can raise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86400
# Clock-hour profiles: daytime peaks at lunch and in the evening; night owls from 22:00 to 03:00.
_DAY_HOURS = np.arange(7, 22)
_DAY_WEIGHTS = np.array([2, 4, 5, 5, 6, 8, 8, 6, 5, 5, 6, 8, 9, 8, 6], dtype=np.float64)
_NIGHT_HOURS = np.array([22, 23, 0, 1, 2, 3])
_NIGHT_WEIGHTS = np.array([25, 25, 20, 15, 10, 5], dtype=np.float64)
_SHIFT_NIGHT = 0.15  # extra chance of a late-night session after the shift, per unit of strength


@dataclass(frozen=True)
class Clock:
    """The time frame and per-user timing latents shared by every source.

    Attributes:
        days: Length of the history window.
        total_days: History plus future period; events fall in ``[0, total_days * DAY)``.
        trend: Per-user log-ratio of activity at the end vs the start of history.
        night_share: Per-user probability that a session is late at night.
        shift_day: Day from which the behaviour shift applies (``inf`` for none).
        strength: Size of the shift.
    """

    days: int
    total_days: int
    trend: np.ndarray
    night_share: np.ndarray
    shift_day: float
    strength: float

    @property
    def beta(self) -> np.ndarray:
        """Per-user growth rate of the intensity, per day."""
        return self.trend / self.days


def trend_mass(beta: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The integral of ``exp(beta * t)`` over ``[lo, hi)`` (expected sessions per unit rate)."""
    length = max(hi - lo, 0.0)
    small = np.abs(beta) < 1e-9
    safe = np.where(small, 1.0, beta)
    return np.where(small, length, np.exp(safe * lo) * np.expm1(safe * length) / safe)


def trend_times(u: np.ndarray, beta: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse CDF of the density ``~ exp(beta * t)`` on ``[lo, hi)``, for uniforms ``u`` (days)."""
    length = hi - lo
    small = np.abs(beta) < 1e-9
    safe = np.where(small, 1.0, beta)
    t = np.where(small, u * length, np.log1p(u * np.expm1(safe * length)) / safe)
    return lo + np.clip(t, 0.0, np.nextafter(length, 0))


def session_starts(
    rng: np.random.Generator, clock: Clock, users: np.ndarray, day: np.ndarray
) -> np.ndarray:
    """Start second of each session: its calendar day plus a clock time from the user's profile."""
    p_night = clock.night_share[users]
    # The shift makes late-night use more common (one of the things a drift monitor should see).
    post = day >= clock.shift_day
    p_night = np.where(post, np.clip(p_night + _SHIFT_NIGHT * clock.strength, 0.0, 0.95), p_night)
    night = rng.random(len(users)) < p_night
    hour_day = _DAY_HOURS[_weighted(rng, _DAY_WEIGHTS, len(users))]
    hour_night = _NIGHT_HOURS[_weighted(rng, _NIGHT_WEIGHTS, len(users))]
    hour = np.where(night, hour_night, hour_day)
    # Night hours 0-3 land in the small hours of the session's own calendar day, so every
    # session stays inside its day and the window.
    second = hour * 3600 + rng.integers(0, 3600, len(users))
    return np.floor(day).astype(np.int64) * DAY + second


def _weighted(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights) / weights.sum()
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(weights) - 1)


def sample_sessions(
    rng: np.random.Generator,
    clock: Clock,
    rate: np.ndarray,
    lo: float,
    hi: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw sessions for every user on ``[lo, hi)`` days.

    Args:
        rng: The random generator.
        clock: Time frame and per-user timing latents.
        rate: Per-user sessions per day at the start of the window (before the trend).
        lo: First day (inclusive).
        hi: Last day (exclusive).

    Returns:
        ``(users, day)``: the user index and the fractional day of each session, grouped by user.
    """
    counts = rng.poisson(rate * trend_mass(clock.beta, lo, hi))
    users = np.repeat(np.arange(len(rate)), counts)
    day = trend_times(rng.random(len(users)), clock.beta[users], lo, hi)
    return users, day


def expand_sessions(
    rng: np.random.Generator,
    users: np.ndarray,
    starts: np.ndarray,
    mean_size: float,
    gap_seconds: float,
    end_second: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn sessions into events: a geometric number per session, exponential gaps apart.

    Returns:
        ``(users, seconds)`` per event; events that would spill past ``end_second`` are dropped.
    """
    sizes = rng.geometric(1.0 / mean_size, len(users))
    ev_users = np.repeat(users, sizes)
    # Whole seconds, at least one apart: two clicks of one session never share a timestamp.
    gaps = 1 + np.floor(rng.exponential(gap_seconds, len(ev_users))).astype(np.int64)
    first = np.cumsum(sizes) - sizes
    gaps[first] = 0
    # Segmented cumulative sum: offsets restart at every session's first event.
    run = np.cumsum(gaps)
    seconds = np.repeat(starts, sizes) + run - np.repeat(run[first], sizes)
    keep = seconds < end_second
    return ev_users[keep], seconds[keep]


def untie(
    user: np.ndarray, second: np.ndarray, code: np.ndarray, end_second: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nudge events apart until no two share user, second and source.

    Independent sessions (or app installs) of one user can land on the same second; a real log
    would not hold two same-source events at one timestamp, and validators treat exact
    repeats as duplicates. Ties are rare, so a few passes settle them.

    Returns:
        ``(second, order)``: the nudged seconds and the stable sort by (user, second, source).
    """
    second = second.copy()
    for _ in range(10):
        order = np.lexsort((code, second, user))
        u, s, c = user[order], second[order], code[order]
        tie = np.flatnonzero((u[1:] == u[:-1]) & (s[1:] == s[:-1]) & (c[1:] == c[:-1])) + 1
        if tie.size == 0:
            break
        rows = order[tie]
        second[rows] = np.where(second[rows] + 1 < end_second, second[rows] + 1, second[rows] - 1)
    return second, order
