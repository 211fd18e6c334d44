"""The bag-of-events view of a user's whole history: TF-IDF over the words of its event texts.

A data scientist's first model on a behaviour log is a logistic regression on the TF-IDF bag of
each user's event texts; on real logs it is hard to beat, because which items a user touched,
and how often, says much about them. This module is that view, shared by the ``tfidf_lr``
baseline and the model's bag channel (:class:`BagVectorizer` with ``dim > 0``: the TF-IDF
reduced by a truncated SVD fitted on training users), so the model sees at least what the
baseline sees.

Users come as a sparse user x text count matrix over distinct ``(source, text)`` pairs (the
``bag_*`` list columns of a built snapshot): logs repeat texts heavily, so words are counted
once per distinct text and the user's term counts are one sparse product, linear in events.
Each text is prefixed with its source name, so the same word in two sources stays apart in the
bigrams ("search coupon" vs "bill coupon").

Example::

    vec = BagVectorizer.fit(texts, counts[train_rows], dim=64)
    z = vec.transform(texts, counts)      # [users, 64] standardised SVD coordinates
    x = vec.tfidf(texts, counts)          # [users, vocabulary] sparse TF-IDF rows
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

NGRAMS = (1, 2)
MIN_USERS = 2  # a term must occur in at least this many training users' histories
MAX_TERMS = 100_000


def _analyzer(vocabulary: list[str] | None = None):
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(ngram_range=NGRAMS, vocabulary=vocabulary, dtype=np.float64)


def source_texts(sources: list[str] | np.ndarray, texts: list[str] | np.ndarray) -> list[str]:
    """The strings whose words are counted: ``"<source> <text>"``."""
    return [f"{s} {t}" for s, t in zip(sources, texts, strict=True)]


@dataclass
class BagVectorizer:
    """TF-IDF (sublinear tf, smooth idf, L2 rows) over word uni- and bigrams, optional SVD.

    Attributes:
        terms: the vocabulary, in column order.
        idf: [terms] inverse document frequencies from training users.
        components: [dim, terms] SVD directions (None: no reduction).
        scale: [dim] standard deviation of training users' SVD coordinates.
    """

    terms: list[str]
    idf: np.ndarray
    components: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return 0 if self.components is None else int(self.components.shape[0])

    @classmethod
    def fit(
        cls, texts: list[str], counts: sp.spmatrix, dim: int = 0, seed: int = 0
    ) -> BagVectorizer:
        """Learn vocabulary, idf and (``dim > 0``) the SVD from training users.

        Args:
            texts: the distinct texts (``source_texts``), the columns of ``counts``.
            counts: [training users, texts] event counts.
            dim: width of the reduced view; 0 keeps the sparse TF-IDF only.
            seed: seed of the randomised SVD.
        """
        analyzer = _analyzer()
        per_text = analyzer.fit_transform(texts) if texts else sp.csr_matrix((0, 0))
        vocab = np.array(analyzer.get_feature_names_out()) if texts else np.array([], str)
        user_terms = sp.csr_matrix(counts, dtype=np.float64) @ per_text
        df = np.asarray((user_terms > 0).sum(0)).ravel()
        keep = np.flatnonzero(df >= MIN_USERS)
        keep = keep[np.argsort(-df[keep], kind="stable")][:MAX_TERMS]
        keep.sort()
        n = user_terms.shape[0]
        idf = np.log((1 + n) / (1 + df[keep])) + 1.0
        vec = cls(vocab[keep].tolist(), idf)
        if dim > 0:
            vec._fit_svd(vec.tfidf(texts, counts), dim, seed)
        return vec

    def _fit_svd(self, x: sp.csr_matrix, dim: int, seed: int) -> None:
        from sklearn.decomposition import TruncatedSVD

        # Fewer users or terms than dims: fit what the data allow, pad with zero directions so
        # the width stays what the model was built for.
        k = max(1, min(dim, x.shape[0] - 1, x.shape[1] - 1))
        comps = np.zeros((dim, x.shape[1]))
        if x.shape[1] > 1 and x.shape[0] > 1:
            comps[:k] = TruncatedSVD(k, random_state=seed).fit(x).components_
        self.components = comps
        z = np.asarray(x @ comps.T)
        std = z.std(0)
        self.scale = np.where(std > 1e-8, std, 1.0)

    def tfidf(self, texts: list[str], counts: sp.spmatrix) -> sp.csr_matrix:
        """[users, terms] L2-normalised TF-IDF rows (users without known terms: zeros)."""
        from sklearn.preprocessing import normalize

        per_text = _analyzer(self.terms).transform(texts) if texts and self.terms else None
        if per_text is None:
            return sp.csr_matrix((counts.shape[0], len(self.terms)))
        tf = sp.csr_matrix(sp.csr_matrix(counts, dtype=np.float64) @ per_text)
        tf.data = 1.0 + np.log(tf.data)  # sublinear tf: the 20th rating of a genre adds little
        return normalize(tf @ sp.diags(self.idf), copy=False)

    def transform(self, texts: list[str], counts: sp.spmatrix) -> np.ndarray:
        """[users, dim] float32 standardised SVD coordinates of the users' TF-IDF rows."""
        return self.reduce(self.tfidf(texts, counts))

    def reduce(self, tfidf: sp.spmatrix) -> np.ndarray:
        """[users, dim] float32 standardised SVD coordinates of TF-IDF rows (:meth:`tfidf`)."""
        if self.components is None:
            raise ValueError("this BagVectorizer has no SVD (fitted with dim=0)")
        return (np.asarray(tfidf @ self.components.T) / self.scale).astype(np.float32)

    # --- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        arrays = {"terms": np.array(self.terms, dtype=str), "idf": self.idf}
        if self.components is not None:
            arrays |= {"components": self.components.astype(np.float32), "scale": self.scale}
        with open(path, "wb") as f:  # np.savez would append ".npz" to a str path
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> BagVectorizer:
        with np.load(path, allow_pickle=False) as z:
            comps = z["components"].astype(np.float64) if "components" in z else None
            scale = z.get("scale")
            return cls(z["terms"].tolist(), z["idf"], comps, scale)


def count_matrix(user_ids: list[str], bags: pd.DataFrame) -> tuple[list[str], sp.csr_matrix]:
    """Distinct ``source_texts`` and the [users, texts] count matrix of long-form bag rows.

    Args:
        user_ids: row order of the matrix; users without bag rows get empty rows.
        bags: rows ``user_id, source, text, count`` (e.g. exploded ``bag_*`` snapshot lists).
    """
    keys = pd.Series(source_texts(bags["source"].to_numpy(), bags["text"].to_numpy()), dtype=object)
    texts, cols = (
        np.unique(keys.to_numpy(dtype=str), return_inverse=True) if len(keys) else ([], [])
    )
    rows = pd.Index(user_ids).get_indexer(bags["user_id"])
    ok = rows >= 0
    mat = sp.csr_matrix(
        (bags["count"].to_numpy(np.float64)[ok], (rows[ok], np.asarray(cols)[ok])),
        shape=(len(user_ids), len(texts)),
    )
    return list(texts), mat
