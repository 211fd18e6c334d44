"""A scenario's bag head: the user's bag and aggregates move it along the scenario's label axis.

On real logs a logistic regression on the TF-IDF bag of a user's whole history is hard to beat,
and an unsupervised summary of the bag (the model's SVD token) loses much of what it sees:
which of thousands of items matter depends on the scenario. Likewise trees on the activity
aggregates catch thresholds (days since the last event) a linear probe does not. The bag head
is both, fitted per scenario at tuning time on the training users: a logistic regression on the
TF-IDF bag and LightGBM on the model's tabular input (profile + aggregates), their logits stacked
by a two-weight logistic regression, and added to the tuned embedding as a shift along the
scenario's label axis (from the class-0 to the class-1 prototype)::

    u' = normalize(u + step * z(user) * axis),   z = (stacked logit - mu) / sd

so the served vector stays one unit vector of the model's width, and a linear probe on it reads
the model's evidence and the head's together. Offline on synthetic data (seed 0, probe AUC):
0.7795 without a head, 0.7892 with the bag regression alone, 0.7947 with the stacked head,
against 0.7845 for ``tfidf_lr`` and 0.7007 for ``gbdt_features``.

Cross-fitted, because a downstream probe trains on the same users the head saw: a training
user's logit comes from the fold model that did not train on it (out-of-fold), every other user
(validation, test, new) gets the mean of the fold models. In the same experiment, the bag
regression fitted on all training users at once and its logit appended to the embedding gave
0.7477: its in-sample logits were near-perfect on those users and the probe trusted them too much.

Example::

    head = fit_bag_head(inputs, y, train_ids, n_terms, prototypes, step=0.1)
    u2 = head.shifted(u, user_ids, inputs)   # inputs: (TF-IDF row, tabular) per user
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

FILE = "bag_head.npz"
FOLDS = 5

Row = tuple[np.ndarray, np.ndarray]  # a user's TF-IDF row: term indices, values
# What a head reads of one user: its TF-IDF row and its featurised tabular input (either None).
HeadInput = tuple[Row | None, np.ndarray | None]


@dataclass
class BagHead:
    """Cross-fitted bag and tabular models of one scenario and the shift they apply.

    Attributes:
        coef: [folds, terms] fold regressions' weights over the model's TF-IDF vocabulary.
        intercept: [folds] their intercepts.
        trees: the fold LightGBM models (model strings), empty without a tabular input.
        users: the training users, sorted; ``fold[i]`` is the fold ``users[i]`` was held out in.
        fold: [len(users)] fold index of each training user.
        stack: [4] bag mean, bag sd, tree mean, tree sd: they standardise the two parts'
            logits (from the training users' out-of-fold logits).
        weights: [3] the stacking regression's weights of the two standardised parts + intercept.
        mu, sd: mean and sd of the training users' stacked out-of-fold logits.
        axis: [emb_dim] unit vector from the class-0 to the class-1 prototype.
        step: shift per standard deviation of the stacked logit (the embedding has unit norm).
        C: the bag regression's inverse regularisation, chosen by CV on the training users.
    """

    coef: np.ndarray
    intercept: np.ndarray
    trees: list[str]
    users: np.ndarray
    fold: np.ndarray
    stack: np.ndarray
    weights: np.ndarray
    mu: float
    sd: float
    axis: np.ndarray
    step: float
    C: float

    def parts(self, user_ids: list[str], inputs: list[HeadInput]) -> np.ndarray:
        """[users, 2] bag and tree logits: a training user's from its held-out fold, others'
        the mean over folds (tree logits 0 without trees)."""
        bag = np.asarray(_csr([i[0] for i in inputs], self.coef.shape[1]) @ self.coef.T)
        per_fold = [bag + self.intercept]
        if self.trees:
            tab = np.stack([_tab(i[1]) for i in inputs]) if inputs else np.zeros((0, 0))
            per_fold.append(np.stack([b.predict(tab, raw_score=True) for b in self._boosters()], 1))
        else:
            per_fold.append(np.zeros_like(per_fold[0]))
        out = np.stack([p.mean(1) for p in per_fold], 1)
        ids = np.asarray(user_ids, dtype=str)
        at = np.minimum(np.searchsorted(self.users, ids), max(len(self.users) - 1, 0))
        known = np.flatnonzero(self.users[at] == ids) if len(self.users) else np.zeros(0, int)
        for k, p in enumerate(per_fold):
            out[known, k] = p[known, self.fold[at[known]]]
        return out

    def logits(self, user_ids: list[str], inputs: list[HeadInput]) -> np.ndarray:
        """[users] the stacked logit of each user."""
        z = (self.parts(user_ids, inputs) - self.stack[[0, 2]]) / self.stack[[1, 3]]
        return z @ self.weights[:2] + self.weights[2]

    def apply(self, u, logits: np.ndarray):
        """``u`` [users, d] (tensor or array) shifted along the axis by the logits, unit norm."""
        z = (np.asarray(logits, np.float64) - self.mu) / self.sd
        shift = torch.as_tensor(self.step * z[:, None] * self.axis[None, :], dtype=torch.float32)
        t = torch.as_tensor(u, dtype=torch.float32)
        out = torch.nn.functional.normalize(t + shift, dim=-1)
        return out if isinstance(u, torch.Tensor) else out.numpy()

    def shifted(self, u, user_ids: list[str], inputs: list[HeadInput]):
        """``u`` [users, d] shifted by these users' own logits (:meth:`apply` of :meth:`logits`)."""
        return self.apply(u, self.logits(user_ids, inputs))

    def with_axis(self, prototypes: torch.Tensor) -> BagHead:
        """The same head along the axis of other prototypes (re-fitted by the guard)."""
        return BagHead(**{**_fields(self), "axis": label_axis(prototypes)})

    def _boosters(self) -> list:
        if getattr(self, "_loaded", None) is None:
            import lightgbm

            self._loaded = [lightgbm.Booster(model_str=t) for t in self.trees]
        return self._loaded

    # --- persistence ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        # Trees as UTF-8 bytes, compressed: a numpy str array is UTF-32 (4x the model text).
        blobs = [t.encode() for t in self.trees]
        with open(Path(directory) / FILE, "wb") as f:  # np.savez appends ".npz" to str paths
            np.savez_compressed(f, coef=self.coef.astype(np.float32), intercept=self.intercept,
                                trees=np.frombuffer(b"".join(blobs), np.uint8),
                                tree_ends=np.cumsum([len(b) for b in blobs], dtype=np.int64),
                                users=self.users.astype(str), fold=self.fold.astype(np.int16),
                                stack=self.stack, weights=self.weights, axis=self.axis.astype(np.float32),
                                stats=np.array([self.mu, self.sd, self.step, self.C]))  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path) -> BagHead | None:
        """The head stored in an adapter directory, or None if it has none."""
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            mu, sd, step, c = z["stats"].tolist()
            raw, ends = z["trees"].tobytes(), z["tree_ends"].tolist()
            trees = [raw[a:b].decode() for a, b in zip([0, *ends][:-1], ends, strict=True)]
            return cls(z["coef"], z["intercept"], trees, z["users"],
                       z["fold"].astype(np.int64), z["stack"], z["weights"], mu, sd, z["axis"],
                       step, c)  # fmt: skip


def _fields(head: BagHead) -> dict:
    return {k: v for k, v in head.__dict__.items() if not k.startswith("_")}


def label_axis(prototypes: torch.Tensor) -> np.ndarray:
    """Unit vector from the class-0 to the class-1 prototype."""
    p = prototypes.detach().cpu().double().numpy()
    d = p[1] - p[0]
    return (d / max(np.linalg.norm(d), 1e-12)).astype(np.float32)


def _tab(x: np.ndarray | None) -> np.ndarray:
    if x is None:
        raise ValueError("this bag head has tabular trees but a user has no tabular input")
    return np.asarray(x, np.float64)


def _csr(rows: list[Row | None], n_terms: int) -> sp.csr_matrix:
    indptr, idx, val = [0], [], []
    for r in rows:
        if r is not None:
            idx.append(r[0])
            val.append(r[1])
        indptr.append(indptr[-1] + (0 if r is None else len(r[0])))
    cat = lambda xs, t: np.concatenate(xs).astype(t) if xs else np.zeros(0, t)  # noqa: E731
    return sp.csr_matrix((cat(val, np.float64), cat(idx, np.int64), indptr), (len(rows), n_terms))


def _standardise(x: np.ndarray) -> tuple[float, float]:
    sd = float(x.std())
    return float(x.mean()), sd if sd > 1e-8 else 1.0


def fit_bag_head(
    inputs: list[HeadInput], y: np.ndarray, user_ids: list[str], n_terms: int,
    prototypes: torch.Tensor, step: float, seed: int = 0,
) -> BagHead | None:  # fmt: skip
    """Fit one scenario's head on its training users; None if a class has < 2 users.

    The bag regression's C is chosen like ``tfidf_lr``'s (stratified CV over the same grid, ROC
    AUC) and LightGBM uses ``gbdt_features``' settings; each fold model trains on the other
    folds, and the stacker on the out-of-fold logits.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from qanchor.eval.bag_baselines import TFIDF_CS, TFIDF_MAX_ITER
    from qanchor.eval.probe import cv_logreg

    y = np.asarray(y).ravel().astype(int)
    folds = int(min(FOLDS, np.bincount(y, minlength=2).min()))
    if folds < 2 or n_terms == 0:
        return None
    x = _csr([i[0] for i in inputs], n_terms)
    tab = None if any(i[1] is None for i in inputs) else np.stack([_tab(i[1]) for i in inputs])
    common = {"solver": "lbfgs", "max_iter": TFIDF_MAX_ITER, "class_weight": "balanced"}
    fold, oof, coef, icpt, trees = np.zeros(len(y), np.int64), np.zeros((len(y), 2)), [], [], []
    with threadpool_limits(limits=1, user_api="blas"):  # small fits, see eval.probe
        cv = cv_logreg(y, TFIDF_CS, seed, max_iter=TFIDF_MAX_ITER).fit(x, y)
        c = float(np.ravel(cv.C_)[0])
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
        for f, (a, b) in enumerate(split):
            m = LogisticRegression(C=c, **common).fit(x[a], y[a])
            coef.append(m.coef_[0])
            icpt.append(m.intercept_[0])
            fold[b], oof[b, 0] = f, m.decision_function(x[b])
            if tab is not None:
                booster = _trees(tab[a], y[a], seed)
                trees.append(booster.model_to_string())
                oof[b, 1] = booster.predict(tab[b], raw_score=True)
    stack = np.array([*_standardise(oof[:, 0]), *_standardise(oof[:, 1])])
    z = (oof - stack[[0, 2]]) / stack[[1, 3]]
    stacker = LogisticRegression(class_weight="balanced").fit(z[:, : 1 + bool(trees)], y)
    weights = np.r_[stacker.coef_[0], [0.0] * (not trees), stacker.intercept_]
    s = z @ weights[:2] + weights[2]
    order = np.argsort(np.asarray(user_ids, dtype=str), kind="stable")
    return BagHead(np.asarray(coef, np.float32), np.asarray(icpt), trees,
                   np.asarray(user_ids, dtype=str)[order], fold[order], stack, weights,
                   *_standardise(s), label_axis(prototypes), float(step), c)  # fmt: skip


def _trees(x: np.ndarray, y: np.ndarray, seed: int):
    """A LightGBM booster with ``gbdt_features``' settings."""
    from lightgbm import LGBMClassifier

    from qanchor.eval.baselines import GBDT_PARAMS

    return LGBMClassifier(random_state=seed, **GBDT_PARAMS).fit(x, y).booster_
