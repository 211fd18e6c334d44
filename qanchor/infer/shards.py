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

Large writers stream it block by block (:class:`EmbeddingWriter`).
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = embedding_table(user_ids, scenarios, vectors, feature_versions, model_version)
    if keep is not None and len(keep):
        kept = pa.Table.from_pandas(keep[list(COLUMNS)], preserve_index=False)
        table = pa.concat_tables([kept.cast(table.schema), table])
        table = table.sort_by([("user_id", "ascending"), ("scenario", "ascending")])
    pq.write_table(table, path)


def embedding_table(
    user_ids: Sequence[str],
    scenarios: Sequence[str],
    vectors: np.ndarray | Sequence[np.ndarray],
    feature_versions: Mapping[str, str],
    model_version: str,
):  # -> pyarrow.Table
    """The rows of :func:`write_embeddings` as an arrow table sorted by user then scenario,
    built from the numpy buffer.

    One Python float per vector component (``.tolist()`` into a frame) costs ~32 bytes: writing
    10,000 users x 12 scenarios x 576 dims peaked at 4.1 GB and took 27 s; from the buffer
    1.5 GB and 6 s (AMD EPYC, one thread, the vectors themselves 0.4 GB).
    """
    import pyarrow as pa

    n_users, n_scen = len(user_ids), len(scenarios)
    vecs = np.asarray(vectors, dtype=np.float32) if n_users else np.zeros((0, n_scen, 0))
    d = vecs.shape[-1]
    by_user = np.argsort(np.asarray(user_ids, dtype=str), kind="stable")
    by_scenario = np.argsort(np.asarray(scenarios, dtype=str), kind="stable")
    order = (by_user[:, None] * n_scen + by_scenario[None, :]).ravel()
    flat = vecs.reshape(n_users * n_scen, d)[order].astype(np.float64).ravel()
    del vecs
    users = np.asarray(user_ids, dtype=object)[order // max(n_scen, 1)]
    offsets = pa.array(np.arange(len(order) + 1, dtype=np.int32) * np.int32(d))
    columns = {
        "user_id": pa.array(users, pa.string()),
        "scenario": pa.array(
            np.asarray(scenarios, dtype=object)[order % max(n_scen, 1)], pa.string()
        ),
        "feature_version": pa.array([feature_versions[u] for u in users], pa.string()),
        "model_version": pa.array([model_version] * len(order), pa.string()),
        "embedding": pa.ListArray.from_arrays(offsets, pa.array(flat)),
    }
    return pa.table(columns)


class EmbeddingWriter:
    """:func:`write_embeddings` block by block, for writers whose users do not fit in memory.

    Each block's users must all come after the previous block's (``user_id`` order; a block is
    sorted when written), so the file keeps the schema's sort order; memory is one block's
    vectors.
    """

    def __init__(self, path: str | Path, model_version: str) -> None:
        self.path, self.model_version = Path(path), model_version
        self._writer = None
        self._last: str | None = None

    def write(
        self, user_ids: Sequence[str], scenarios: Sequence[str],
        vectors: np.ndarray | Sequence[np.ndarray], feature_versions: Mapping[str, str],
    ) -> None:  # fmt: skip
        import pyarrow.parquet as pq

        if len(user_ids) and self._last is not None and min(user_ids) <= self._last:
            raise ValueError("EmbeddingWriter: blocks must come in increasing user_id order")
        table = embedding_table(user_ids, scenarios, vectors, feature_versions, self.model_version)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)
        self._last = max(user_ids) if len(user_ids) else self._last

    def close(self) -> None:
        """Finish the file (an empty file with the schema if nothing was written)."""
        if self._writer is None:
            write_embeddings(self.path, [], [], np.zeros((0, 0, 0)), {}, self.model_version)
        else:
            self._writer.close()


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
    if not len(user_ids):
        return {}
    # Filtered while read: a block of users reads its rows, not the whole file.
    wanted = [("model_version", "==", model_version), ("user_id", "in", list(user_ids))]
    rows = pd.read_parquet(path, filters=wanted)
    rows = rows[rows["feature_version"] == rows["user_id"].map(feature_versions)]
    position = {s: j for j, s in enumerate(scenarios)}
    rows = rows[rows["scenario"].isin(position)].drop_duplicates(["user_id", "scenario"])
    out: dict[str, np.ndarray] = {}
    for user, part in rows.groupby("user_id", sort=False):
        if len(part) == len(position):
            order = part["scenario"].map(position).to_numpy().argsort()
            out[user] = np.stack(part["embedding"].to_numpy()[order]).astype(np.float32)
    return out
