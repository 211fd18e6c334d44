"""The dataset builder: validate, split, cut history/future, snapshot, make UserU pairs.

Run it with::

    qanchor data build --input data/synthetic --out data/built [--cutoff 2026-04-01] [--preset small]

It works on any dataset in the contract (any set of sources, with or without profiles or qa).
Output files are listed in :data:`OUTPUT_FILES`; ``manifest.json`` and ``report.md`` describe them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd

from qanchor.config import to_dict
from qanchor.data.build_config import BuildConfig
from qanchor.data.build_tables import build_tables
from qanchor.data.contract import write_scenarios
from qanchor.data.loader import Dataset, load_dataset, write_quarantine
from qanchor.data.manifest import write_manifest, write_report
from qanchor.data.sources import write_sources
from qanchor.data.user_rows import write_user_rows
from qanchor.errors import QAnchorError
from qanchor.io import atomic_dir

log = logging.getLogger(__name__)

# The history and future events themselves are not written: nothing reads them after the build
# (the feature store serves snapshots.parquet); their counts are in users.parquet and report.md.
OUTPUT_FILES = (
    "users.parquet",  # user_id, split, cutoff, n_history, n_future
    "labels.parquet",  # user_id, scenario, label, split
    "snapshots.parquet",  # per user: capped recent events per source, whole-history bag (lists)
    "aggregates.parquet",  # per user: activity aggregates per source
    "profiles.parquet",  # per user: the tabular profile (absent if the dataset has none)
    "pairs.parquet",  # UserU pairs: user_id, split, kind, topic, query, answer
)


def resolve_cutoff(events: pd.DataFrame, cfg: BuildConfig) -> pd.Timestamp:
    """The cutoff timestamp (UTC midnight): given, or last event day + 1 minus future_days."""
    if cfg.cutoff:
        try:
            ts = pd.Timestamp(cfg.cutoff)
        except ValueError as exc:
            raise QAnchorError(f"--cutoff {cfg.cutoff!r} is not a date (use YYYY-MM-DD)") from exc
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    last_day = events["ts"].max().floor("D") + pd.Timedelta(days=1)
    return last_day - pd.Timedelta(days=cfg.future_days)


def horizon(cfg: BuildConfig) -> pd.Timestamp | None:
    """The latest event time a build accepts: now + ``future_horizon_days`` (None: no limit)."""
    if cfg.future_horizon_days is None:
        return None
    return pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=cfg.future_horizon_days)


# A derived cutoff is "from outliers" when its future window holds less than this share of the
# events an average window of history of the same length does: a few late events pushed it
# past the end of the real activity.
SPARSE_FUTURE = 0.1


def cut_events(
    events: pd.DataFrame, cutoff: pd.Timestamp, future_days: int, history_days: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean events cut at ``cutoff`` into (history, future).

    History is every event before the cutoff (only the last ``history_days`` if set), future
    the events in ``[cutoff, cutoff + future_days)``; both with a fresh index.
    """
    ts = events["ts"]
    start = cutoff - pd.Timedelta(days=history_days) if history_days else ts.min()
    history = events[(ts < cutoff) & (ts >= start)].reset_index(drop=True)
    future = events[(ts >= cutoff) & (ts < cutoff + pd.Timedelta(days=future_days))]
    return history, future.reset_index(drop=True)


def build_warnings(
    ds: Dataset,
    tables: dict[str, pd.DataFrame],
    hist: pd.DataFrame,
    fut: pd.DataFrame,
    cutoff: pd.Timestamp,
    cfg: BuildConfig,
) -> list[str]:
    """What a person should look at before training on this build (report, manifest, log).

    ``hist`` and ``fut`` are the build's history and future events (:func:`cut_events`).
    """
    out = []
    if not cfg.cutoff and len(hist):
        span = (cutoff - hist["ts"].min()) / pd.Timedelta(days=cfg.future_days)
        expected = len(hist) / max(span, 1.0)
        if len(fut) < SPARSE_FUTURE * expected:
            out.append(
                f"the derived cutoff {cutoff.date()} leaves {len(fut)} event(s) in the "
                f"{cfg.future_days}-day future window, against ~{expected:.0f} in an average "
                f"window of history: late outlying events (last {ds.events['ts'].max()}) may "
                "have moved it; pass --cutoff, or fix their timestamps"
            )
    labels = tables["labels.parquet"]
    for scen, grp in labels.groupby("scenario", sort=False):
        for split in ("train", "test"):
            values = grp.loc[grp["split"] == split, "label"].unique()
            if len(values) < 2:
                has = f"only label {values[0]}" if len(values) else "no users"
                out.append(f"scenario {scen!r} has {has} in the {split} split: it cannot be "
                           "tuned or evaluated; add users of the other class")  # fmt: skip
                break
    for file, cols in ds.nulled.items():
        out.append(f"{file}: infinite values set to null: {cols}")
    for file, target in ds.links.items():
        out.append(f"{file} is a symbolic link to {target} (outside data is read)")
    return out


def _with_model_spec(cfg: BuildConfig) -> BuildConfig:
    """``cfg`` with the caps of the model named by ``feature_spec_from`` (if any)."""
    if not cfg.feature_spec_from:
        return cfg
    from qanchor.features.spec import FeatureSpec

    model = cfg.feature_spec_from
    if model == "served":
        from qanchor import registry

        model = registry.load_promoted()
    spec = FeatureSpec.from_model(model)
    if spec is None:
        raise QAnchorError(f"{model} records no feature spec (trained by an older qanchor)")
    return dataclasses.replace(cfg, max_events_per_source=spec.max_events_per_source,
                               source_caps=dict(spec.source_caps), history_days=spec.history_days,
                               max_bag_texts=spec.max_bag_texts or cfg.max_bag_texts)  # fmt: skip


# The tables the manifest and report read whole once written; the others are dropped then.
REPORTED = ("users.parquet", "labels.parquet", "pairs.parquet")


def build_dataset(input_dir: str | Path, out_dir: str | Path, cfg: BuildConfig) -> Path:
    """Build a training-ready dataset directory from a contract dataset. Returns ``out_dir``."""
    t0 = time.perf_counter()
    cfg = _with_model_spec(cfg)
    ds = select_scenarios(load_dataset(input_dir, horizon(cfg)), cfg.scenarios)
    if not cfg.source_semantics:
        ds = dataclasses.replace(ds, source_specs={})
    cutoff = resolve_cutoff(ds.events, cfg)
    history, future = cut_events(ds.events, cutoff, cfg.future_days, cfg.history_days)
    ds = dataclasses.replace(ds, events=_remnant(ds.events))
    with atomic_dir(out_dir) as tmp:
        tables = build_tables(ds, history, future, cutoff, cfg)
        warnings = build_warnings(ds, tables, history, future, cutoff, cfg)
        for w in warnings:
            log.warning("%s", w)
        rows = {}
        for name in list(tables):
            # Row groups of a few thousand rows, in user order: a block of users reads its own.
            rows[name] = write_user_rows(tables[name], tmp / name)
            if name not in REPORTED:
                del tables[name]
        write_scenarios(ds.scenarios, tmp / "scenarios.yaml")
        # Every source of the events with its effective spec (neutral where undeclared).
        write_sources([ds.source_spec(s) for s in ds.sources], tmp / "sources.yaml")
        quarantined = write_quarantine(ds, tmp)
        seconds = time.perf_counter() - t0
        manifest = write_manifest(
            tmp, ds, tables, rows, cutoff, to_dict(cfg), quarantined, seconds, warnings
        )
        write_report(tmp, ds, tables, history, future, manifest)
    log.info("built %s in %.1fs", out_dir, time.perf_counter() - t0)
    return Path(out_dir)


def _remnant(events: pd.DataFrame) -> pd.DataFrame:
    """What the build still reads of the raw log once it is cut: one event per source (the
    sources) and the latest event (the warnings name it).

    History and future are copies, so keeping the whole log beside them through snapshots and
    pairs cost its size again: on 100,000 synthetic users (11.8 M events) it was resident
    until the end of the build.
    """
    if events.empty:
        return events
    keep = events.drop_duplicates("source").index.union([events["ts"].idxmax()])
    return events.loc[keep].reset_index(drop=True)


def select_scenarios(ds: Dataset, names: list[str]) -> Dataset:
    """Keep only the named scenarios (labels and definitions); an empty list keeps them all."""
    if not names:
        return ds
    known = [s.name for s in ds.scenarios]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise QAnchorError(f"unknown scenarios {unknown}; {ds.root}/scenarios.yaml defines {known}")
    labels = ds.labels[ds.labels["scenario"].isin(names)].reset_index(drop=True)
    return dataclasses.replace(
        ds, scenarios=[s for s in ds.scenarios if s.name in names], labels=labels
    )
