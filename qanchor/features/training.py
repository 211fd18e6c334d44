"""Point-in-time training reads, saved once per (build, declarations, users) and reused.

    feats = training_snapshots(FeatureStoreConfig(data="data/built"), users[["user_id", "cutoff"]])

Pretraining, tuning and evaluation of one run read the same users at the same cutoffs. Each
stage is its own process, and a Feast point-in-time join over thousands of users plus the import
of Feast cost tens of seconds per stage, so the first read saves its result (Feast's idea of a
saved dataset) under the store's state directory and later reads load it without touching Feast.
Stages that read some of the build's users (tuning: train and val; evaluation: a sample) ask for
every user's rows and keep ``users`` only, a filtered read of the saved copy: one join per run,
not one per distinct subset (2,000 synthetic users: ~35 s each, fp32 AMD EPYC; most of it in
Feast's dask store pickling the list columns to name its tasks).

The key covers everything the result depends on: the build's content hash (the offline sources
are the build's files), the repo's declarations, the feature service and the requested
(user, cutoff) rows. Online pushes do not enter: they never change offline rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from qanchor.features.config import FeatureStoreConfig
from qanchor.features.feast_store import TRAINING_SERVICE, UserFeatures, historical_snapshots

PARTS = ("snapshots", "profiles", "aggregates")


def training_snapshots(
    cfg: FeatureStoreConfig, entity_df: pd.DataFrame, service: str = TRAINING_SERVICE,
    users: Collection[str] | None = None,
) -> UserFeatures:  # fmt: skip
    """:func:`historical_snapshots`, read through Feast once and then from its saved copy.

    ``users``: keep only these users' rows (in ``entity_df`` order); None: every row.
    """
    from qanchor.io import atomic_dir

    saved = cfg.state_dir / "saved" / _key(cfg, entity_df, service)
    if (saved / "snapshots.parquet").is_file():
        return _load(saved, users)
    feats = historical_snapshots(cfg, entity_df, service)
    with atomic_dir(saved) as tmp:
        for name in PARTS:
            if (frame := getattr(feats, name)) is not None:
                frame.to_parquet(Path(tmp) / f"{name}.parquet", index=False)
    return feats if users is None else _load(saved, users)


def _load(saved: Path, users: Collection[str] | None = None) -> UserFeatures:
    from qanchor.data.user_rows import read_user_rows

    def read(path: Path) -> pd.DataFrame:
        return pd.read_parquet(path) if users is None else read_user_rows(path, users)

    frames = {n: read(p) for n in PARTS if (p := saved / f"{n}.parquet").is_file()}
    return UserFeatures(**frames)


def _key(cfg: FeatureStoreConfig, entity_df: pd.DataFrame, service: str) -> str:
    h = hashlib.blake2b(digest_size=12)
    manifest = json.loads((Path(cfg.data) / "manifest.json").read_text())
    h.update(f"{manifest['content_hash']}\x1f{service}\x1f".encode())
    for path in sorted(Path(cfg.repo).glob("*.py")):
        h.update(path.read_bytes())
    ent = entity_df.rename(columns={"cutoff": "event_timestamp"})[["user_id", "event_timestamp"]]
    h.update(pd.util.hash_pandas_object(ent.astype(str), index=False).values.tobytes())
    return h.hexdigest()
