"""Glue between ``SynthConfig`` and the world: dates, user ids, the population, the events frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qanchor.data.synth_sources import Events, Population
from qanchor.data.synth_timeline import DAY, Clock, untie
from qanchor.data.synth_world import TRAITS
from qanchor.errors import QAnchorError


def utc(date: str) -> pd.Timestamp:
    """An ISO date or timestamp as a UTC timestamp (naive values are taken as UTC).

    Raises:
        QAnchorError: ``date`` is not a readable date.
    """
    try:
        ts = pd.Timestamp(date)
    except (TypeError, ValueError) as exc:
        raise QAnchorError(f"SynthConfig: cannot read {date!r} as an ISO date") from exc
    if ts is pd.NaT:
        raise QAnchorError(f"SynthConfig: cannot read {date!r} as an ISO date")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def day_offset(date: str, start: str) -> float:
    """Days from ``start`` to ``date``."""
    return (utc(date) - utc(start)) / pd.Timedelta(days=1)


def user_ids(n: int) -> np.ndarray:
    """User ids ``u000000, u000001, ...`` (wider when ``n`` needs it), as an object array."""
    width = max(6, len(str(max(n - 1, 0))))
    return np.char.add("u", np.char.zfill(np.arange(n).astype(str), width)).astype(object)


def population(
    lat: pd.DataFrame,
    days: int,
    future_days: int,
    shift_day: float | None,
    strength: float,
    scale: float,
) -> Population:
    """What the sources need from the latents and the config.

    Args:
        lat: Latents from ``sample_latents``.
        days: History window length.
        future_days: Future period length.
        shift_day: Day the behaviour shift starts (None or a non-positive strength: no shift).
        strength: Shift strength.
        scale: Multiplier on event volume.
    """
    no_shift = shift_day is None or strength <= 0
    clock = Clock(
        days=days,
        total_days=days + future_days,
        trend=lat["activity_trend"].to_numpy(),
        night_share=lat["night_share"].to_numpy(),
        # A shift dated before the start applies from day 0.
        shift_day=np.inf if no_shift else max(shift_day, 0.0),
        strength=strength,
    )
    return Population(
        traits=lat[list(TRAITS)].to_numpy(),
        activity=np.exp(lat["activity_level"].to_numpy()),
        trip_onset=lat["trip_onset_day"].fillna(np.inf).to_numpy(),
        crunch_onset=lat["crunch_onset_day"].fillna(np.inf).to_numpy(),
        clock=clock,
        scale=scale,
    )


def events_frame(
    parts: dict[str, Events], ids: np.ndarray, start: str, total_days: int
) -> pd.DataFrame:
    """Concatenate the sources into the contract's events table.

    Rows are sorted by user, time and source; no two rows share all three.
    """
    names = list(parts)
    user = np.concatenate([parts[s]["user"] for s in names])
    second = np.concatenate([parts[s]["second"] for s in names]).astype(np.int64)
    code = np.concatenate([np.full(len(parts[s]["user"]), i) for i, s in enumerate(names)])
    second, order = untie(user, second, code, total_days * DAY)
    # Nanosecond UTC timestamps under pandas 2 and 3 alike (3.x would otherwise infer seconds).
    origin = utc(start).tz_localize(None).to_datetime64().astype("datetime64[ns]")
    ts = origin + second[order].astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "user_id": ids[user[order]],
            "ts": pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC"),
            "source": np.array(names, dtype=object)[code[order]],
            "text": np.concatenate([parts[s]["text"] for s in names])[order],
            "value": np.concatenate([parts[s]["value"] for s in names])[order].astype(np.float64),
        }
    )


def labels_frame(labels: np.ndarray, ids: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Long labels table: one row per user and scenario, users in id order."""
    return pd.DataFrame(
        {
            "user_id": np.repeat(ids, len(names)),
            "scenario": np.tile(np.array(names, dtype=object), len(ids)),
            "label": labels.ravel().astype(np.int64),
        }
    )
