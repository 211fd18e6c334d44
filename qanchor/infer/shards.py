"""The batch-embedding file: one parquet schema for every writer of user x scenario vectors.

    write_embeddings(path, users, scenarios, vectors, emb.feature_versions(), emb.model_version)

``qanchor embed`` (:func:`qanchor.infer.refresh.refresh`, ``shard-00000.parquet``...) and the
pipeline's embed stage (``stages.embed_shard``, ``shard-00000-of-00004.parquet``...) write it.
One row per user and scenario, sorted by ``user_id`` then ``scenario``, with the columns
(:data:`COLUMNS`):

- ``user_id`` (string);
- ``scenario`` (string): the scenario name (or free-text query) the vector answers;
- ``feature_version`` (string): hash of the user's features the vector was computed from
  (``Embedder.feature_versions``; the service answers ``/embed`` with the same hash);
- ``model_version`` (string): the model identity (:func:`qanchor.model.identity.model_id`);
- ``embedding`` (list of float64): the vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("user_id", "scenario", "feature_version", "model_version", "embedding")


def write_embeddings(
    path: str | Path,
    user_ids: Sequence[str],
    scenarios: Sequence[str],
    vectors: np.ndarray | Sequence[np.ndarray],
    feature_versions: Mapping[str, str],
    model_version: str,
    keep: pd.DataFrame | None = None,
) -> None:
    """Write the vectors of ``user_ids`` x ``scenarios`` to the parquet file ``path``.

    Args:
        path: the file to write (replaced; callers make it atomic).
        user_ids: the users, in the order of ``vectors``.
        scenarios: the scenarios, in the order of each user's vectors.
        vectors: per user, a [scenarios, d] array (a [users, scenarios, d] array will do).
        feature_versions: user -> the version of the features the user's vectors come from.
        model_version: the identity of the model that computed them.
        keep: rows already in this schema to write beside the new ones (an incremental
            refresh carries the unchanged users of a shard over).
    """
    rows = [
        (u, s, feature_versions[u], model_version, vectors[i][j].tolist())
        for i, u in enumerate(user_ids)
        for j, s in enumerate(scenarios)
    ]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if keep is not None and len(keep):
        frame = pd.concat([keep[list(COLUMNS)], frame], ignore_index=True)
    frame.sort_values(["user_id", "scenario"]).to_parquet(path, index=False)


def vectors_file(bf16: bool) -> str:
    """Evaluation's file of tuned vectors, named by the precision they were computed in.

    Evaluation embeds its users x tuned scenarios with the candidate model; the embed stage of
    the same run reuses those vectors instead of computing them again (:func:`reusable`). Only
    vectors of the same precision are reused, so a batch table never mixes bf16 and fp32 rows.
    """
    return f"embeddings-{'bf16' if bf16 else 'fp32'}.parquet"


def reusable(
    path: str | Path,
    user_ids: Sequence[str],
    scenarios: Sequence[str],
    feature_versions: Mapping[str, str],
    model_version: str,
) -> dict[str, np.ndarray]:
    """User -> [scenarios, d] float32 vectors of ``path`` that can stand in for new ones.

    A user is reusable when the file holds every one of ``scenarios`` for them, computed by
    ``model_version`` from the features of ``feature_versions[user]``; other users (new events,
    another model, a scenario missing) are left out, to be embedded afresh. A missing file
    gives an empty dict.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    rows = pd.read_parquet(path, filters=[("model_version", "==", model_version)])
    rows = rows[rows["user_id"].isin(user_ids)]
    rows = rows[rows["feature_version"] == rows["user_id"].map(feature_versions)]
    position = {s: j for j, s in enumerate(scenarios)}
    rows = rows[rows["scenario"].isin(position)].drop_duplicates(["user_id", "scenario"])
    out: dict[str, np.ndarray] = {}
    for user, part in rows.groupby("user_id", sort=False):
        if len(part) == len(position):
            order = part["scenario"].map(position).to_numpy().argsort()
            out[user] = np.stack(part["embedding"].to_numpy()[order]).astype(np.float32)
    return out
