"""KV-cached, query-conditioned embedding of users (the paper's inference acceleration).

:class:`Embedder` puts together a model directory's :class:`~qanchor.infer.anchor.AnchorEngine`
(the stateless prefix/suffix engine, with its prefix KV cache), an
:class:`~qanchor.infer.users.InputBuilder` (snapshots -> users' model inputs), the scenario
adapters and, for batch work, one loaded table of users.

Example::

    emb = Embedder.from_dir("runs/model")
    emb.load_users(snapshots, profiles)
    vecs = emb.embed(["u1", "u2"], ["cash_loan_default", "Will this user travel soon?"])  # [2, 2, d]

Serving (``qanchor.serving``) loads no table: each request builds its own inputs with
:meth:`Embedder.request_users` (keyed by their feature versions; the cache persists across
requests) and runs merged requests' (user, column) pairs with ``emb.engine.embed_pairs``, so
concurrent requests never share user state. ``qanchor.infer.explain`` decodes a text
description from the same cached prefixes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from qanchor.infer.anchor import AnchorEngine, Part, Suffix
from qanchor.infer.prefix_cache import PrefixCache, PrefixEntry
from qanchor.infer.users import InputBuilder, UserInputs
from qanchor.model import layout as L
from qanchor.model.data import UserTable
from qanchor.model.network import QAnchorModel
from qanchor.model.profile import ProfileFeaturizer

__all__ = ["Embedder", "Suffix"]


class Embedder:
    """A model's engine, its input builder, its scenario adapters and the loaded users.

    Methods that take no users use the table of :meth:`load_users` (or ``users``, where given).

    Args:
        model: the (LoRA-merged) model; its parameters are frozen here.
        featurizer: the profile featurizer saved with the model.
        cache_bytes: the prefix cache's budget, unless ``cache`` is given.
        max_batch: (user, suffix) pairs and prefixes per forward pass.
        model_version: the model identity in the cache keys.
        bf16: autocast setting of the passes (auto/on/off).
        cache: a prefix cache to share (serving keeps one across model swaps).
    """

    def __init__(
        self, model: QAnchorModel, featurizer: ProfileFeaturizer, cache_bytes: int = 256 << 20,
        max_batch: int = 64, model_version: str = "", bf16: str = "off",
        cache: PrefixCache | None = None,
    ) -> None:  # fmt: skip
        cache = cache if cache is not None else PrefixCache(cache_bytes)
        self.engine = AnchorEngine(model, cache, max_batch, model_version, bf16)
        self.inputs = InputBuilder(model, featurizer, self.engine.vectors)
        self.adapters: dict[str, Suffix] = {}
        self.users: UserInputs | None = None

    @classmethod
    def from_dir(cls, model_dir: str | Path, **kwargs) -> Embedder:
        """Load a model directory and any scenario adapters stored beside it."""
        from qanchor.model.artifact import load_model
        from qanchor.model.identity import model_id
        from qanchor.tune.adapters import load_adapters

        model, featurizer, _ = load_model(model_dir)
        if hasattr(model.backbone, "merge_adapter"):
            # Inference only: fold LoRA into the frozen weights (one matmul per projection).
            model.backbone.merge_adapter()
        # The model's identity (weights, config, adapters): prefix cache keys and embedding
        # outputs carry it, so nothing computed by another model is ever reused.
        emb = cls(model, featurizer, model_version=model_id(model_dir), **kwargs)
        emb.adapters = {a.name: Suffix(a.query, a.prompt, a.head) for a in load_adapters(model_dir)}
        return emb

    # --- the engine's parts -----------------------------------------------------------------
    @property
    def model(self) -> QAnchorModel:
        return self.engine.model

    @property
    def featurizer(self) -> ProfileFeaturizer:
        return self.inputs.featurizer

    @property
    def cache(self) -> PrefixCache:
        return self.engine.cache

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def model_version(self) -> str:
        return self.engine.model_version

    # --- users ------------------------------------------------------------------------------
    def load_users(self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None = None) -> None:
        """Set the users this embedder embeds (snapshot rows as built by ``data build``)."""
        self.users = self.inputs.load(snapshots, profiles)

    def request_users(
        self, snapshots: pd.DataFrame, profiles: pd.DataFrame | None, versions: dict[str, str]
    ) -> UserInputs:
        """One request's users (:meth:`InputBuilder.request`), without touching this object."""
        return self.inputs.request(snapshots, profiles, versions, self.engine.peek)

    def _users(self, users: UserInputs | None) -> UserInputs:
        if users is not None:
            return users
        if self.users is None:
            raise RuntimeError("no users: call load_users first (or pass users)")
        return self.users

    @property
    def table(self) -> UserTable:
        return self._users(None).table

    def knows(self, user_id: str) -> bool:
        """Whether ``user_id`` is among the loaded users."""
        return self.users is not None and self.users.knows(user_id)

    @property
    def user_ids(self) -> list[str]:
        """The loaded users, in row order (none before :meth:`load_users`)."""
        return [] if self.users is None else self.users.user_ids

    def feature_versions(self) -> dict[str, str]:
        """User -> hash of the features the user's prefix is built from."""
        return self._users(None).feature_versions()

    def rows(self, user_ids: list[str]) -> list[int]:
        return self._users(None).rows(user_ids)

    def cache_key(self, row: int) -> tuple[str, str, str]:
        """(user, feature version, model version) of a loaded user's row."""
        return self.engine.cache_key(self._users(None), row)

    # --- embedding --------------------------------------------------------------------------
    def suffix(self, scenario_or_query: str, tuned: bool = True) -> Suffix:
        """A scenario's suffix (its query and, if ``tuned``, its soft prompt and bag head), or
        free text."""
        s = self.adapters.get(scenario_or_query)
        if s is None:
            return Suffix(scenario_or_query)
        return s if tuned else Suffix(s.query)

    def suffix_embeds(self, sfx: Suffix) -> Part:
        return self.engine.suffix_embeds(sfx)

    def suffix_forward(self, entries: list[PrefixEntry], parts: list[Part]) -> torch.Tensor:
        return self.engine.suffix_forward(entries, parts)

    def prefixes(self, rows: list[int], use_cache: bool = True) -> list[PrefixEntry]:
        return self.engine.prefixes(self._users(None), rows, use_cache)

    def prefix_batch(self, rows: list[int], left: bool = True) -> L.Batch:
        return self.engine.prefix_batch(self._users(None), rows, left)

    def embed_rows(
        self, rows: list[int], suffixes: list[Suffix], use_cache: bool = True, block: int = 64
    ) -> torch.Tensor:
        return self.engine.embed_rows(self._users(None), rows, suffixes, use_cache, block)

    def embed_pairs(
        self, rows: list[int], suffixes: list[Suffix], pairs: list[tuple[int, int]]
    ) -> torch.Tensor:
        return self.engine.embed_pairs(self._users(None), rows, suffixes, pairs)

    def embed_rows_uncached(self, rows: list[int], suffixes: list[Suffix]) -> torch.Tensor:
        return self.engine.embed_rows_uncached(self._users(None), rows, suffixes)

    def embed(
        self, user_ids: list[str], scenarios: list[str], tuned: bool = True,
        use_cache: bool = True, users: UserInputs | None = None,
    ) -> np.ndarray:  # fmt: skip
        """[users, scenarios, d] float32 embeddings; a scenario may also be free query text.

        ``users``: whose inputs to embed (default: the loaded table).
        """
        users = self._users(users)
        sfx = [self.suffix(s, tuned) for s in scenarios]
        return self.engine.embed_rows(users, users.rows(user_ids), sfx, use_cache).numpy()


def embed_rows_shown(
    emb: Embedder, rows: list[int], suffixes: list[Suffix], desc: str, chunk: int = 256,
    use_cache: bool = True,
) -> np.ndarray:  # fmt: skip
    """[rows, suffixes, d] :func:`embed_rows_split`, ``chunk`` users at a time behind a
    progress bar (evaluation and the tuning guard embed thousands of users x 24 suffixes)."""
    from qanchor.progress import bar as progress

    parts = []
    with progress(total=len(rows), desc=desc, unit="user") as bar:
        for k in range(0, len(rows), chunk):
            parts.append(embed_rows_split(emb, rows[k : k + chunk], suffixes, use_cache))
            bar.update(len(rows[k : k + chunk]))
    return np.concatenate(parts) if parts else np.zeros((0, len(suffixes), 1), np.float32)


def embed_rows_split(
    emb: Embedder, rows: list[int], suffixes: list[Suffix], use_cache: bool = True
) -> np.ndarray:
    """[rows, suffixes, d] :meth:`Embedder.embed_rows` split over the CPU's cores
    (:func:`qanchor.infer.threads.split_rows`; batch jobs: evaluation, the guard, embed shards).

    Each part takes its share of one 64-user block: the users in flight, and the memory they
    hold, stay one block's (2 parts of 64: +250 MB peak for +20% users/s; of 32: +40 MB, +15%).
    """
    from qanchor.infer.threads import split_rows, workers

    block = max(1, 64 // workers(emb.device, len(rows)))

    def run(part: list[int]) -> np.ndarray:
        return emb.embed_rows(part, suffixes, use_cache, block).numpy()

    return np.concatenate(split_rows(run, rows, emb.device))
