"""A model's identity: one content hash of everything that decides its embeddings.

    model_id("runs/small/model")   # '3f9c0a1b2d4e5f60'

The hash covers the whole model directory: weights, config, tokenizer, the bag-of-events
vectorizer, the profile featuriser and every scenario adapter. So a retrained model, a re-tuned
or a newly tuned scenario each give a new identity, while a copy of the directory (the
registry's, a pod's) keeps it. The registry uses it as the version (``qanchor:<model_id>``), and
the prefix cache keys, the embedding parquet (``model_version``), the refresh state, ``/scenarios``
and drift summaries all carry it: there is no second name for a model.
"""

from __future__ import annotations

from pathlib import Path

ID_LENGTH = 16


def model_id(model_dir: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 over the model directory's files (paths + bytes)."""
    from qanchor.io import sha256_tree

    return sha256_tree(model_dir)[:ID_LENGTH]
