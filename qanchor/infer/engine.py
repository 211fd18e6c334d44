"""KV-cached, query-conditioned embedding of users (the paper's inference acceleration).

A user's prefix (user, modal and event tokens) does not depend on the query, so its key/value
states are computed once and reused for every scenario: each extra scenario costs only its
suffix ("Query: ..." + soft prompt + <USER_EMB>). Suffixes of many (user, scenario) pairs run in
one batch over a left-padded stack of the users' cached prefixes.

Example::

    emb = Embedder.from_dir("runs/model")
    emb.load_users(snapshots, profiles)
    vecs = emb.embed(["u1", "u2"], ["cash_loan_default", "Will this user travel soon?"])  # [2, 2, d]

Serving (``qanchor.serving``) sets each request's users with ``set_request_users`` (keyed by
their feature versions; the cache persists across requests) and runs merged requests' (user,
column) pairs with ``embed_pairs``. ``qanchor.infer.explain`` decodes a text description from
the same cached prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from qanchor.infer.prefix_cache import PrefixCache, PrefixEntry
from qanchor.infer.users import UserInputs
from qanchor.model import layout as L
from qanchor.model.data import UserTable
from qanchor.model.network import QAnchorModel
from qanchor.model.precision import autocast, use_bf16
from qanchor.model.profile import ProfileFeaturizer


@dataclass
class Suffix:
    """A query suffix: the query text and an optional soft prompt [P, d_llm]."""

    query: str
    prompt: torch.Tensor | None = None


class Embedder(UserInputs):
    """Embeds (user, scenario-or-query) pairs with a byte-bounded prefix KV cache."""

    def __init__(
        self, model: QAnchorModel, featurizer: ProfileFeaturizer, cache_bytes: int = 256 << 20,
        max_batch: int = 64, model_version: str = "", bf16: str = "off",
    ) -> None:  # fmt: skip
        self.model, self.featurizer = model.eval(), featurizer
        # Serving and prompt tuning never update the model: no parameter gradients to compute.
        for p in model.parameters():
            p.requires_grad_(False)
        self.cache = PrefixCache(cache_bytes)
        self.max_batch, self.model_version = max_batch, model_version
        self.device = model.emb_token.device
        # fp32 by default: the cached = uncached guarantee (1e-4) is stated for fp32.
        self.bf16 = use_bf16(bf16, self.device)
        self.adapters: dict[str, Suffix] = {}
        self.table: UserTable | None = None
        self._rows: dict[str, int] = {}
        self._versions: list[str] = []
        self._vectors: torch.Tensor | None = None
        self._vector_cache = None  # serving: a read-only VectorCache, loaded on first use

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
        emb.adapters = {a.name: Suffix(a.query, a.prompt) for a in load_adapters(model_dir)}
        return emb

    # --- users ----------------------------------------------------------------------------
    def knows(self, user_id: str) -> bool:
        """Whether ``user_id`` is among the loaded users."""
        return user_id in self._rows

    @property
    def user_ids(self) -> list[str]:
        """The loaded users, in row order."""
        return list(self._rows)

    def feature_versions(self) -> dict[str, str]:
        """User -> hash of the features the user's prefix is built from."""
        return {u: self._versions[i] for i, u in enumerate(self.table.user_ids)}

    def rows(self, user_ids: list[str]) -> list[int]:
        missing = [u for u in user_ids if u not in self._rows]
        if missing:
            raise KeyError(f"unknown users: {missing[:5]}")
        return [self._rows[u] for u in user_ids]

    def cache_key(self, row: int) -> tuple[str, str, str]:
        """(user, feature version, model version): changed features or model miss the cache."""
        return (self.table.user_ids[row], self._versions[row], self.model_version)

    # --- suffixes -------------------------------------------------------------------------
    def suffix(self, scenario_or_query: str, tuned: bool = True) -> Suffix:
        """A scenario's suffix (its query and, if ``tuned``, its soft prompt), or free text."""
        s = self.adapters.get(scenario_or_query)
        if s is None:
            return Suffix(scenario_or_query)
        return s if tuned else Suffix(s.query)

    def suffix_embeds(self, sfx: Suffix) -> tuple[torch.Tensor, int]:
        """[Ls, d_llm] input embeddings of a suffix and the index of its <USER_EMB>."""
        n_prompt = 0 if sfx.prompt is None else sfx.prompt.shape[0]
        seg = self.model.layout.suffix(sfx.query, n_prompt)
        ids = torch.tensor(seg.ids, device=self.device)
        kinds = torch.tensor(seg.kinds, device=self.device)
        emb = self.model.causal_lm.get_input_embeddings()(ids)
        if n_prompt:
            emb = emb.masked_scatter((kinds == L.PROMPT).unsqueeze(-1), sfx.prompt.to(emb))
        emb = torch.where((kinds == L.USER_EMB).unsqueeze(-1), self.model.emb_token.to(emb), emb)
        return emb, len(seg.ids) - 1

    # --- prefixes -------------------------------------------------------------------------
    @torch.no_grad()
    def prefixes(self, rows: list[int], use_cache: bool = True) -> list[PrefixEntry]:
        """Prefix KV states of ``rows``: from the cache, computing the missing ones in batches."""
        out: dict[int, PrefixEntry] = {}
        todo = []
        for r in dict.fromkeys(rows):
            hit = self.cache.get(self.cache_key(r)) if use_cache else None
            if hit is None:
                todo.append(r)
            else:
                out[r] = hit
        for k in range(0, len(todo), self.max_batch):
            for r, entry in zip(
                todo[k : k + self.max_batch],
                self._compute_prefixes(todo[k : k + self.max_batch]),
                strict=True,
            ):
                out[r] = entry
                if use_cache:
                    self.cache.put(self.cache_key(r), entry)
        return [out[r] for r in rows]

    def prefix_batch(self, rows: list[int], left: bool = True) -> L.Batch:
        lay = self.model.layout
        return L.collate(
            [[lay.prefix(self.table.inputs[r])] for r in rows],
            [self.table.inputs[r] for r in rows],
            lay.pad,
            left=left,
        ).to(self.device)

    def batch_vectors(self, batch: L.Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text vectors of a batch's event slots and of its whole-history bag (None: unused)."""
        bag = self.event_vectors(batch.bag_text) if self.model.cfg.whole_history else None
        return self.event_vectors(batch.ev_text), bag

    def event_vectors(self, ev_text: torch.Tensor) -> torch.Tensor:
        if self._vectors is not None:
            return self._vectors[ev_text]
        uniq, inv = torch.unique(ev_text, return_inverse=True)
        texts = [self.table.texts[i] for i in uniq.tolist()]
        if self.model.cfg.encoder_lora_r:
            return self.model.event_vectors(texts)[inv]
        return self._lookup_vectors(texts)[inv]

    def _compute_prefixes(self, rows: list[int]) -> list[PrefixEntry]:
        from transformers import DynamicCache

        batch = self.prefix_batch(rows, left=True)
        emb, user = self.model.embeds_and_user(batch, *self.batch_vectors(batch))
        cache = DynamicCache()
        with autocast(self.bf16, self.device):
            self.model.hidden(emb, batch.attention_mask, past_key_values=cache, use_cache=True)
        lengths = batch.attention_mask.sum(1).tolist()
        keep_user = self.model.cfg.user_skip
        # Left padding: each user's real tokens are the last `length` positions.
        return [
            PrefixEntry(
                [
                    (lay.keys[b, :, -n:].clone(), lay.values[b, :, -n:].clone())
                    for lay in cache.layers
                ],
                n,
                user[b].float().clone() if keep_user else None,
            )
            for b, n in enumerate(lengths)
        ]

    # --- embedding ------------------------------------------------------------------------
    @torch.no_grad()
    def embed_rows(
        self, rows: list[int], suffixes: list[Suffix], use_cache: bool = True, block: int = 64
    ) -> torch.Tensor:
        """[len(rows), len(suffixes), d] embeddings: each prefix once, suffixes batched.

        Users go in blocks: a block's prefix states are stacked (left-padded) once, and every
        chunk of (user, scenario) pairs gathers its rows from that stack by index, instead of
        re-stacking per pair.
        """
        entries = self.prefixes(rows, use_cache)
        parts = [self.suffix_embeds(s) for s in suffixes]
        out = torch.empty(len(rows), len(suffixes), self.model.cfg.emb_dim)
        for b in range(0, len(rows), block):
            kv, pmask, users = self._stack(entries[b : b + block])
            pairs = [(i, j) for i in range(min(block, len(rows) - b)) for j in range(len(suffixes))]
            for k in range(0, len(pairs), self.max_batch):
                chunk = pairs[k : k + self.max_batch]
                idx = torch.tensor([i for i, _ in chunk], device=self.device)
                sub = [(key[idx], val[idx]) for key, val in kv]
                sub_users = None if users is None else users[idx]
                u = self._suffix_pass(sub, pmask[idx], [parts[j] for _, j in chunk], sub_users)
                for (i, j), vec in zip(chunk, u, strict=True):
                    out[b + i, j] = vec.float().cpu()
        return out

    @torch.no_grad()
    def embed_pairs(
        self, rows: list[int], suffixes: list[Suffix], pairs: list[tuple[int, int]]
    ) -> torch.Tensor:
        """[len(pairs), d]: pair (i, j) is user ``rows[i]`` with ``suffixes[j]``.

        For serving, where merged requests ask for different users x columns: each prefix is
        computed (or fetched from the cache) once, and the pairs run in batches of
        ``max_batch`` whatever their user or suffix, instead of one cross product per request.
        """
        entries = self.prefixes(rows)
        parts = [self.suffix_embeds(s) for s in suffixes]
        out = torch.empty(len(pairs), self.model.cfg.emb_dim)
        for k in range(0, len(pairs), self.max_batch):
            chunk = pairs[k : k + self.max_batch]
            u = self.suffix_forward([entries[i] for i, _ in chunk], [parts[j] for _, j in chunk])
            out[k : k + len(chunk)] = u.float().cpu()
        return out

    def _stack(
        self, entries: list[PrefixEntry]
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor | None]:
        """Per-layer [N, kvh, n, hd] keys/values left-padded to the longest prefix, the mask,
        and the user tokens [N, d_llm] (None for a head without the user shortcut)."""
        n = max(e.length for e in entries)
        kv = []
        for layer in range(len(entries[0].kv)):
            ks = [_left_pad(e.kv[layer][0], n) for e in entries]
            vs = [_left_pad(e.kv[layer][1], n) for e in entries]
            kv.append((torch.stack(ks), torch.stack(vs)))
        pmask = torch.tensor(
            [[0] * (n - e.length) + [1] * e.length for e in entries], device=self.device
        )
        users = None
        if self.model.cfg.user_skip:
            users = torch.stack([e.user for e in entries]).to(self.device)
        return kv, pmask, users

    def suffix_forward(
        self, entries: list[PrefixEntry], parts: list[tuple[torch.Tensor, int]]
    ) -> torch.Tensor:
        """u for each (prefix entry, suffix embeddings) pair; gradients flow into the suffix."""
        kv, pmask, users = self._stack(entries)
        return self._suffix_pass(kv, pmask, parts, users)

    def _suffix_pass(
        self,
        kv: list[tuple[torch.Tensor, torch.Tensor]],
        pmask: torch.Tensor,
        parts: list[tuple[torch.Tensor, int]],
        users: torch.Tensor | None = None,
    ) -> torch.Tensor:
        from transformers import DynamicCache

        n = pmask.shape[1]
        ls = max(p[0].shape[0] for p in parts)
        emb = torch.stack(
            [torch.cat([p[0], p[0].new_zeros(ls - p[0].shape[0], p[0].shape[1])]) for p in parts]
        )
        smask = torch.tensor(
            [[1] * p[0].shape[0] + [0] * (ls - p[0].shape[0]) for p in parts], device=self.device
        )
        mask = torch.cat([pmask, smask], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, n:]
        with autocast(self.bf16, self.device):
            out = self.model.causal_lm.model(
                inputs_embeds=emb,
                attention_mask=mask,
                position_ids=pos,
                past_key_values=DynamicCache(kv),
                use_cache=True,
            )
        at = torch.tensor([p[1] for p in parts], device=self.device)
        h = out.last_hidden_state[torch.arange(len(parts), device=self.device), at]
        # The small head stays in fp32 in both paths (its standardisation is precision-sensitive).
        return self.model.head(h.float(), "anchor", users)

    @torch.no_grad()
    def embed_rows_uncached(self, rows: list[int], suffixes: list[Suffix]) -> torch.Tensor:
        """Reference path: a full forward over prefix + suffix for every pair, no KV reuse.

        Pairs are batched across users exactly like the cached path, so the two differ only in
        whether the prefix is recomputed per scenario.
        """
        batch = self.prefix_batch(rows, left=False)
        pre, user = self.model.embeds_and_user(batch, *self.batch_vectors(batch))
        user = user.float()
        lengths = batch.attention_mask.sum(1).tolist()
        parts = [self.suffix_embeds(s) for s in suffixes]
        pairs = [(i, j) for i in range(len(rows)) for j in range(len(suffixes))]
        out = torch.empty(len(rows), len(suffixes), self.model.cfg.emb_dim)
        for k in range(0, len(pairs), self.max_batch):
            chunk = pairs[k : k + self.max_batch]
            seqs = [torch.cat([pre[i, : lengths[i]], parts[j][0]]) for i, j in chunk]
            m = max(len(x) for x in seqs)
            emb = torch.stack([torch.cat([x, x.new_zeros(m - len(x), x.shape[1])]) for x in seqs])
            mask = torch.tensor(
                [[1] * len(x) + [0] * (m - len(x)) for x in seqs], device=self.device
            )
            with autocast(self.bf16, self.device):
                h = self.model.hidden(emb, mask)
            at = torch.tensor([lengths[i] + parts[j][1] for i, j in chunk], device=self.device)
            h_at = h[torch.arange(len(chunk), device=self.device), at].float()
            rows_at = torch.tensor([i for i, _ in chunk], device=self.device)
            u = self.model.head(h_at, "anchor", user[rows_at])
            for (i, j), vec in zip(chunk, u, strict=True):
                out[i, j] = vec.float().cpu()
        return out

    def embed(
        self, user_ids: list[str], scenarios: list[str], tuned: bool = True, use_cache: bool = True
    ) -> np.ndarray:
        """[users, scenarios, d] float32 embeddings; a scenario may also be free query text."""
        sfx = [self.suffix(s, tuned) for s in scenarios]
        return self.embed_rows(self.rows(user_ids), sfx, use_cache).numpy()


def _left_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """[kvh, L, hd] -> [kvh, n, hd] with zeros in front (masked out by the attention mask)."""
    return (
        x
        if x.shape[1] == n
        else torch.cat([x.new_zeros(x.shape[0], n - x.shape[1], x.shape[2]), x], dim=1)
    )
