"""Vectors of (user, suffix) pairs that one stage keeps for a later stage of the same run.

    write_pairs(path, users, suffixes, vecs, emb.feature_versions(), model_key(model_dir, bf16))
    vectors, known = read_pairs(paths, users, suffixes, emb.feature_versions(), model_key(model_dir, bf16))

Tuning's validation guard embeds its train and val users with every tuned prompt and with the
bare query; evaluation then needs exactly those pairs again (a kept prompt is the tuned suffix,
a rejected one leaves the bare query). Kept here, evaluation embeds only the users the guard did
not see. A vector is reused only under the same key: the model's weights (the model directory
without its scenario adapters, which the suffix itself covers), the precision, the user's
feature version and the suffix's content (query text and prompt values). Vectors are stored
raw, without a scenario's bag head (:mod:`qanchor.tune.bag_head`): a reader applies the head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qanchor.io import atomic_file

COLUMNS = ("user_id", "feature_version", "suffix", "model_key", "embedding")


def model_key(model_dir: str | Path, bf16: bool) -> str:
    """The weights of ``model_dir`` (its scenario adapters aside) and the precision."""
    from qanchor.io import sha256_tree

    # Not model_id: that covers the adapters, which are tuned while these vectors are written.
    return f"{sha256_tree(model_dir, skip=('scenarios',))[:16]}-{'bf16' if bf16 else 'fp32'}"


def suffix_digest(sfx) -> str:
    """A suffix's content: its query text and prompt values (an empty prompt is none)."""
    h = hashlib.sha256(sfx.query.encode())
    prompt = sfx.prompt
    if prompt is not None and prompt.numel():
        h.update(str(tuple(prompt.shape)).encode())
        h.update(prompt.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def write_pairs(
    path: str | Path,
    user_ids: Sequence[str],
    suffixes: Sequence,
    vectors: np.ndarray,
    feature_versions: Mapping[str, str],
    key: str,
) -> None:
    """Write ``vectors`` [users, suffixes, d] to the parquet file ``path`` (replaced)."""
    digests = [suffix_digest(s) for s in suffixes]
    rows = [(u, feature_versions[u], dg, key, vectors[i, j].tolist())
            for i, u in enumerate(user_ids) for j, dg in enumerate(digests)]  # fmt: skip
    with atomic_file(path) as tmp:  # a reader never sees half a file
        pd.DataFrame(rows, columns=list(COLUMNS)).to_parquet(tmp, index=False)


def read_pairs(
    paths: Iterable[str | Path],
    user_ids: Sequence[str],
    suffixes: Sequence,
    feature_versions: Mapping[str, str],
    key: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The vectors the files hold for ``user_ids`` x ``suffixes`` under ``key`` and each user's
    current feature version: ``(vectors [users, suffixes, d] float32, known [users, suffixes])``
    (``d`` is 0 when nothing is known); the unknown pairs are to be embedded afresh."""
    known = np.zeros((len(user_ids), len(suffixes)), dtype=bool)
    frames = [pd.read_parquet(p, filters=[("model_key", "==", key)])
              for p in paths if Path(p).is_file()]  # fmt: skip
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    col = {dg: j for j, dg in enumerate(suffix_digest(s) for s in suffixes)}
    row = {u: i for i, u in enumerate(user_ids)}
    rows = rows[rows["suffix"].isin(col) & rows["user_id"].isin(row)]
    rows = rows[rows["feature_version"] == rows["user_id"].map(feature_versions)]
    if not len(rows):
        return np.zeros((len(user_ids), len(suffixes), 0), np.float32), known
    i, j = rows["user_id"].map(row).to_numpy(), rows["suffix"].map(col).to_numpy()
    vectors = np.zeros((len(user_ids), len(suffixes), len(rows["embedding"].iloc[0])), np.float32)
    vectors[i, j] = np.stack(rows["embedding"].to_numpy())
    known[i, j] = True
    return vectors, known
