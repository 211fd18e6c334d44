"""The tables of a build (file name -> frame): users and splits, labels, snapshots, aggregates,
UserU pairs. Per-user tables are made :data:`USER_CHUNK` users at a time to bound memory.
"""

from __future__ import annotations

import pandas as pd

from qanchor.data import pairs as pairs_mod
from qanchor.data import snapshots, stats
from qanchor.data.build_config import BuildConfig
from qanchor.data.loader import Dataset
from qanchor.data.split import assign_splits


def build_tables(
    ds: Dataset, history: pd.DataFrame, future: pd.DataFrame, cutoff: pd.Timestamp, cfg: BuildConfig
) -> dict[str, pd.DataFrame]:
    """The output tables (file name -> frame) of the history and future events."""
    users = pd.Index(sorted(ds.labels["user_id"].unique()), name="user_id")
    split = assign_splits(
        users.to_series(), _given_split(ds.labels), cfg.val_fraction, cfg.test_fraction, cfg.seed
    )
    user_tab = pd.DataFrame({"user_id": users, "split": split.to_numpy(), "cutoff": cutoff})
    user_tab["n_history"] = (
        history.groupby("user_id").size().reindex(users).fillna(0).astype(int).to_numpy()
    )
    user_tab["n_future"] = (
        future.groupby("user_id").size().reindex(users).fillna(0).astype(int).to_numpy()
    )
    labels = ds.labels.drop(columns=["split"], errors="ignore").merge(
        user_tab[["user_id", "split"]], on="user_id"
    )
    capped = snapshots.cap_events(history, cfg.source_caps, cfg.max_events_per_source)
    tables = {
        "users.parquet": user_tab,
        "labels.parquet": labels,
        "snapshots.parquet": snapshots.snapshot_lists(capped, users, cutoff).merge(
            _per_chunk(lambda h, u: snapshots.bag_lists(h, u, cfg.max_bag_texts), history, users),
            on="user_id",
        ),
        "aggregates.parquet": _per_chunk(
            lambda h, u: snapshots.aggregates(h, u, ds.sources, cutoff), history, users
        ),
        "pairs.parquet": _pairs(ds, history, future, user_tab, cutoff, cfg),
    }
    if ds.profiles is not None:
        prof = ds.profiles[ds.profiles["user_id"].isin(users)].reset_index(drop=True)
        tables["profiles.parquet"] = prof.assign(snapshot_ts=cutoff)
    return tables


def _given_split(labels: pd.DataFrame) -> pd.Series | None:
    if "split" not in labels.columns or labels["split"].isna().all():
        return None
    return labels.dropna(subset=["split"]).drop_duplicates("user_id").set_index("user_id")["split"]


# Users whose pairs, bags and aggregates are computed at once. All 100,000 synthetic users at
# once took ~2.4 GB on top of the build's tables for the pairs (history with action keys, action
# tables, their rows as tuples) and peaked the build at 4.2 GB in the aggregates (a copy of the
# whole history with three more columns) and the bags (a groupby over every event).
USER_CHUNK = 10_000


def _per_chunk(table, history: pd.DataFrame, users: pd.Index) -> pd.DataFrame:
    """``table(events, users)``, a per-user table, made :data:`USER_CHUNK` users at a time."""
    parts = [table(h, u) for u, h in snapshots.by_users(history, users, USER_CHUNK)]
    return pd.concat(parts, ignore_index=True)


def _pairs(
    ds: Dataset,
    history: pd.DataFrame,
    future: pd.DataFrame,
    users: pd.DataFrame,
    cutoff: pd.Timestamp,
    cfg: BuildConfig,
) -> pd.DataFrame:
    """D_future for every user, D_uqa topics, and the dataset's own qa pairs.

    Users are taken :data:`USER_CHUNK` at a time (the pairs do not depend on it): what a pair
    says of a user depends only on its own events, the population's count bins and the
    windows' starts.
    """
    hbins = stats.count_bins(stats.source_counts(history)) if len(history) else {}
    fbins = stats.count_bins(stats.source_counts(future)) if len(future) else {}
    starts = [h["ts"].min() if len(h) else None for h in (history, future)]
    profiles = ds.profiles.set_index("user_id").to_dict("index") if ds.profiles is not None else {}
    gen = pairs_mod.TemplateGenerator(hbins, salt=cfg.seed, sources=ds.source_specs)
    rows = []
    ids = pd.Index(users["user_id"])
    split = dict(zip(ids, users["split"], strict=True))
    hist_chunks, fut_chunks = (snapshots.by_users(ev, ids, USER_CHUNK) for ev in (history, future))
    for (part, hist), (_, fut) in zip(hist_chunks, fut_chunks, strict=True):
        hist, fut = _with_actions(hist, cfg), _with_actions(fut, cfg)
        hstats = stats.user_stats(hist, cutoff, cfg.recent_days, cfg.top_k, starts[0])
        fstats = stats.user_stats(fut, cutoff + pd.Timedelta(days=cfg.future_days),
                                  cfg.recent_days, cfg.future_max_items, starts[1])  # fmt: skip
        for uid in part:
            answer = pairs_mod.future_answer(fstats.get(uid), fbins, cfg.future_max_items)
            rows.append((uid, split[uid], "future", "future", pairs_mod.FUTURE_QUERY, answer))
            st = hstats.get(uid)
            if st is not None:
                st.profile = profiles.get(uid, {})
                rows += [
                    (uid, split[uid], p.kind, p.topic, p.query, p.answer)
                    for p in gen.generate(st, cfg.uqa_per_user)
                ]
    out = pd.DataFrame(rows, columns=["user_id", "split", "kind", "topic", "query", "answer"])
    if ds.qa is not None:
        qa = ds.qa.merge(users[["user_id", "split"]], on="user_id").assign(kind="qa", topic="qa")
        out = pd.concat([out, qa[out.columns]], ignore_index=True)
    return out


def _with_actions(events: pd.DataFrame, cfg: BuildConfig) -> pd.DataFrame:
    return events.assign(action=stats.action_keys(events["text"], cfg.action_words))
