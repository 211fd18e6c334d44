"""Synthetic UserU-style data in the input contract (DESIGN.md section 3).

Run it with::

    qanchor data synth --users 2000 --seed 0 --out data/synth
    qanchor data synth --preset tiny --shift-after 2026-03-15 --out data/drift   # drift demo

or from Python::

    data = synthesize(SynthConfig(users=500, seed=1))
    write_dataset(data, "data/synth")

Users have latent traits (``synth_world``) that drive ``days`` of history plus ``future_days`` of
future activity across six sources: ``bill``, ``miniprogram``, ``spm``, ``app``, ``search`` events
and a tabular profile. Twelve binary scenarios in three groups each read a different mix of traits,
so that no single static embedding is best for all of them. The same config always yields the
same frames (every random draw comes from a numpy Generator seeded from ``seed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from qanchor.config import option
from qanchor.errors import QAnchorError

if TYPE_CHECKING:  # numpy/pandas load on first use, so `qanchor --help` stays fast
    import numpy as np
    import pandas as pd

SOURCES = ("bill", "miniprogram", "spm", "search", "app")  # event sources; "profile" is a table
# ``sources.yaml``: what each source's ``value`` holds (the renderers in synth_sources/synth_apps).
# No currency: the synthetic world's amounts are unitless prices.
SOURCE_ENTRIES: dict[str, dict[str, str]] = {
    "bill": {"description": "a payment, repayment, fee, cash advance or transfer",
             "value": "amount"},
    "miniprogram": {"description": "a use of a mini-program", "value": "duration",
                    "unit": "seconds"},
    "spm": {"description": "a navigation path from an entry page", "value": "duration",
            "unit": "seconds"},
    "search": {"description": "a search query", "value": "none"},
    "app": {"description": "an app installed", "value": "none"},
}  # fmt: skip
TRUTH_DIR = "_truth"  # generator ground truth, not part of the contract
_STREAM_IDS = {
    "latents": 1,
    "profiles": 2,
    "labels": 3,
    **{s: 10 + i for i, s in enumerate(SOURCES)},
}


@dataclass
class SynthConfig:
    """Configuration of the synthetic dataset generator."""

    users: int = option(2000, "number of synthetic users")
    seed: int = option(0, "random seed; the same config gives identical data")
    days: int = option(90, "days of history per user (the builder's default cut is start + days)")
    future_days: int = option(30, "days of 'future' activity after the history window")
    start: str = option("2026-01-01", "first day of the event log (ISO date, UTC)")
    shift_after: str | None = option(
        None, "ISO date after which behaviour shifts (drift demo); none for a stationary world"
    )
    shift_strength: float = option(
        1.0, "size of the behaviour shift (0 = none, 1 = clearly visible)"
    )
    label_noise: float = option(
        0.07, "share of labels replaced by a random draw at the scenario's base rate"
    )
    label_signal: float = option(
        1.0, "multiplier on every scenario's trait weights (higher = easier)"
    )
    activity_scale: float = option(1.0, "multiplier on event volume (1.0 = ~120 events per user)")

    PRESETS: ClassVar[dict[str, dict[str, object]]] = {
        "tiny": {"users": 200},
        "small": {"users": 2000},
        "paper": {"users": 100000},
    }


@dataclass
class SyntheticData:
    """A generated dataset in memory.

    Attributes:
        events: ``user_id, ts, source, text, value``, sorted by user and time.
        profiles: ``user_id`` plus the tabular profile columns.
        labels: ``user_id, scenario, label``: every user for every scenario.
        scenarios: ``scenarios.yaml`` entries: ``{name, query, description, group}``.
        traits: ``user_id`` plus the latent traits and episodes (ground truth, not in the contract).
    """

    events: pd.DataFrame
    profiles: pd.DataFrame
    labels: pd.DataFrame
    scenarios: list[dict[str, str]]
    traits: pd.DataFrame


def synthesize(cfg: SynthConfig) -> SyntheticData:
    """Generate a dataset in memory (see the module docstring for what it contains).

    Raises:
        QAnchorError: The config is invalid (e.g. no users, an unreadable date).
    """
    import pandas as pd

    from qanchor.data import synth_assemble as A
    from qanchor.data.synth_apps import app_events
    from qanchor.data.synth_profile import make_profiles
    from qanchor.data.synth_scenarios import SCENARIOS, draw_labels
    from qanchor.data.synth_sources import stream_events
    from qanchor.data.synth_world import sample_latents

    _check(cfg)
    lat = sample_latents(_rng(cfg, "latents"), cfg.users, cfg.days)
    ids = A.user_ids(cfg.users)
    shift = None if cfg.shift_after is None else A.day_offset(cfg.shift_after, cfg.start)
    pop = A.population(
        lat, cfg.days, cfg.future_days, shift, cfg.shift_strength, cfg.activity_scale
    )
    parts = {s: stream_events(s, pop, _rng(cfg, s)) for s in SOURCES if s != "app"}
    parts["app"] = app_events(pop, _rng(cfg, "app"))
    labels = draw_labels(lat, _rng(cfg, "labels"), cfg.label_noise, cfg.label_signal)
    return SyntheticData(
        events=A.events_frame(parts, ids, cfg.start, cfg.days + cfg.future_days),
        profiles=make_profiles(lat, _rng(cfg, "profiles"), ids),
        labels=A.labels_frame(labels, ids, [s.name for s in SCENARIOS]),
        scenarios=[s.as_contract() for s in SCENARIOS],
        traits=pd.concat([pd.DataFrame({"user_id": ids}), lat], axis=1),
    )


def write_dataset(data: SyntheticData, out: str | Path) -> Path:
    """Write the five contract files, plus ``_truth/traits.parquet`` (generator ground truth).

    Returns:
        The dataset directory.
    """
    import yaml

    from qanchor.data.contract import EVENTS, LABELS, PROFILES, SCENARIOS, SOURCE_SPECS
    from qanchor.data.sources import SourceSpec, write_sources

    out = Path(out)
    (out / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    data.events.to_parquet(out / EVENTS, index=False)
    data.profiles.to_parquet(out / PROFILES, index=False)
    data.labels.to_parquet(out / LABELS, index=False)
    text = yaml.safe_dump(data.scenarios, sort_keys=False, allow_unicode=True, width=100)
    (out / SCENARIOS).write_text(text, encoding="utf-8")
    specs = [SourceSpec(name, **entry) for name, entry in SOURCE_ENTRIES.items()]
    write_sources(specs, out / SOURCE_SPECS)
    data.traits.to_parquet(out / TRUTH_DIR / "traits.parquet", index=False)
    (out / TRUTH_DIR / "README.txt").write_text(
        "Ground truth of the synthetic generator (latent traits and episodes per user).\n"
        "NOT part of the dataset contract: models must never read it; it exists for tests and\n"
        "analysis of what the labels depend on.\n",
        encoding="utf-8",
    )
    return out


def synth(cfg: SynthConfig, out: str | Path) -> Path:
    """Generate a dataset and write it to ``out`` (what ``qanchor data synth`` runs)."""
    return write_dataset(synthesize(cfg), out)


def _rng(cfg: SynthConfig, stream: str) -> np.random.Generator:
    import numpy as np

    # One independent stream per component: changing one source leaves the others' draws intact.
    return np.random.default_rng([cfg.seed, _STREAM_IDS[stream]])


def _check(cfg: SynthConfig) -> None:
    """Reject configs that cannot produce a dataset, naming every problem at once."""
    from qanchor.data.synth_assemble import utc

    problems = []
    if cfg.users < 1:
        problems.append(f"users must be >= 1, got {cfg.users}")
    if cfg.days < 1 or cfg.future_days < 0:
        problems.append(f"need days >= 1 and future_days >= 0, got {cfg.days}, {cfg.future_days}")
    if not 0.0 <= cfg.label_noise <= 1.0:
        problems.append(f"label_noise must be in [0, 1], got {cfg.label_noise}")
    if cfg.shift_strength < 0 or cfg.activity_scale <= 0:
        problems.append("shift_strength must be >= 0 and activity_scale > 0")
    if problems:
        raise QAnchorError("SynthConfig: " + "; ".join(problems))
    utc(cfg.start)
    if cfg.shift_after is not None:
        utc(cfg.shift_after)
