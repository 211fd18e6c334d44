"""Group scenarios whose queries mean similar things, to share one soft prompt per group."""

from __future__ import annotations

import numpy as np


def cluster_scenarios(
    queries: dict[str, str], n_clusters: int, encode, seed: int = 0
) -> dict[str, int]:
    """Scenario name -> cluster id, by k-means on the queries' sentence embeddings.

    Args:
        queries: scenario name -> natural-language query.
        n_clusters: number of groups (capped at the number of scenarios).
        encode: texts -> [N, d] array (the model's event encoder is a fine choice).
        seed: k-means seed.
    """
    from sklearn.cluster import KMeans

    names = sorted(queries)
    k = max(1, min(n_clusters, len(names)))
    vecs = np.asarray(encode([queries[n] for n in names]), dtype=np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(min=1e-12)
    labels = (
        KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vecs)
        if k > 1
        else np.zeros(len(names), int)
    )
    return {n: int(c) for n, c in zip(names, labels, strict=True)}
