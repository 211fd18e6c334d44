"""The QAnchor model's prefix/suffix engine: users' prefixes once, every query as a suffix.

A user's prefix (user, modal and event tokens) does not depend on the query, so its key/value
states are computed once and reused for every scenario: each extra scenario costs only its
suffix ("Query: ..." + soft prompt + <USER_EMB>). Suffixes of many (user, scenario) pairs run in
one batch over a left-padded stack of the users' cached prefixes (:mod:`qanchor.infer.kv`).

The engine holds the model, a byte-bounded prefix cache keyed by (user, feature version, model
version) and nothing about users: every call takes the :class:`~qanchor.infer.users.UserInputs`
it embeds, so requests with their own inputs can share one engine. Example::

    engine = AnchorEngine(model, PrefixCache(256 << 20), model_version=model_id(model_dir))
    users = InputBuilder(model, featurizer, engine.vectors).load(snapshots, profiles)
    u = engine.embed_rows(users, users.rows(["u1", "u2"]), [Suffix("Will they travel?")])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qanchor.infer.kv import KVEngine, PrefixKV
from qanchor.infer.prefix_cache import PrefixCache, PrefixEntry
from qanchor.infer.suffix_pass import Part, suffix_states
from qanchor.infer.users import TextVectors, UserInputs
from qanchor.model import layout as L
from qanchor.model.network import QAnchorModel
from qanchor.model.precision import use_bf16


@dataclass
class Suffix:
    """A query suffix: the query text, an optional soft prompt [P, d_llm] and an optional bag
    head (:class:`~qanchor.tune.bag_head.BagHead`) applied to the vectors it yields."""

    query: str
    prompt: torch.Tensor | None = None
    head: object | None = None


class AnchorEngine:
    """Embeds (user, suffix) pairs of given users with a byte-bounded prefix KV cache."""

    def __init__(
        self, model: QAnchorModel, cache: PrefixCache, max_batch: int = 64,
        model_version: str = "", bf16: str = "off",
    ) -> None:  # fmt: skip
        self.model = model.eval()
        # Serving and prompt tuning never update the model: no parameter gradients to compute.
        for p in model.parameters():
            p.requires_grad_(False)
        self.cache, self.max_batch, self.model_version = cache, max_batch, model_version
        self.device = model.emb_token.device
        # fp32 by default: the cached = uncached guarantee (1e-4) is stated for fp32.
        self.bf16 = use_bf16(bf16, self.device)
        self.kv = KVEngine(model.causal_lm.model, self.bf16, self.device)
        self.vectors = TextVectors(model)

    def cache_key(self, users: UserInputs, row: int) -> tuple[str, str, str]:
        """(user, feature version, model version): changed features or model miss the cache."""
        return (users.table.user_ids[row], users.versions[row], self.model_version)

    def peek(self, user_id: str, version: str) -> PrefixEntry | None:
        """The cached prefix of a user at a feature version (no hit counted)."""
        return self.cache.peek((user_id, version, self.model_version))

    # --- suffixes -------------------------------------------------------------------------
    def suffix_embeds(self, sfx: Suffix) -> Part:
        """A suffix's [Ls, d_llm] input embeddings, the index of its <USER_EMB>, its text."""
        n_prompt = 0 if sfx.prompt is None else sfx.prompt.shape[0]
        seg = self.model.layout.suffix(sfx.query, n_prompt)
        ids = torch.tensor(seg.ids, device=self.device)
        kinds = torch.tensor(seg.kinds, device=self.device)
        emb = self.model.causal_lm.get_input_embeddings()(ids)
        if n_prompt:
            emb = emb.masked_scatter((kinds == L.PROMPT).unsqueeze(-1), sfx.prompt.to(emb))
        emb = torch.where((kinds == L.USER_EMB).unsqueeze(-1), self.model.emb_token.to(emb), emb)
        return Part(emb, seg.kinds.count(L.TEXT), sfx.query)

    # --- prefixes -------------------------------------------------------------------------
    @torch.no_grad()
    def prefixes(
        self, users: UserInputs, rows: list[int], use_cache: bool = True
    ) -> list[PrefixEntry]:
        """Prefix KV states of ``rows``: from the cache, computing the missing ones in batches."""
        out: dict[int, PrefixEntry] = {}
        todo = []
        for r in dict.fromkeys(rows):
            hit = self.cache.get(self.cache_key(users, r)) if use_cache else None
            if hit is None and r in users.pinned:  # evicted since the inputs were built
                hit = users.pinned[r]
                if use_cache:
                    self.cache.put(self.cache_key(users, r), hit)
            if hit is None:
                todo.append(r)
            else:
                out[r] = hit
        for k in range(0, len(todo), self.max_batch):
            chunk = todo[k : k + self.max_batch]
            for r, entry in zip(chunk, self._compute_prefixes(users, chunk), strict=True):
                out[r] = entry
                if use_cache:
                    self.cache.put(self.cache_key(users, r), entry)
        return [out[r] for r in rows]

    def prefix_batch(self, users: UserInputs, rows: list[int], left: bool = True) -> L.Batch:
        lay, inputs = self.model.layout, users.table.inputs
        return L.collate(
            [[lay.prefix(inputs[r])] for r in rows], [inputs[r] for r in rows], lay.pad, left=left
        ).to(self.device)

    def batch_vectors(
        self, users: UserInputs, batch: L.Batch
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text vectors of a batch's event slots and of its whole-history bag (None: unused)."""
        bag = self.event_vectors(users, batch.bag_text) if self.model.cfg.whole_history else None
        return self.event_vectors(users, batch.ev_text), bag

    def event_vectors(self, users: UserInputs, ev_text: torch.Tensor) -> torch.Tensor:
        if users.vectors is not None:
            return users.vectors[ev_text]
        uniq, inv = torch.unique(ev_text, return_inverse=True)
        return self.vectors.lookup([users.table.texts[i] for i in uniq.tolist()])[inv]

    def _compute_prefixes(self, users: UserInputs, rows: list[int]) -> list[PrefixEntry]:
        batch = self.prefix_batch(users, rows, left=True)
        emb, user = self.model.embeds_and_user(batch, *self.batch_vectors(users, batch))
        pre = self.kv.prefix(emb, batch.attention_mask)
        keep_user = self.model.cfg.user_skip
        inputs = users.table.inputs
        return [
            PrefixEntry(kv, n, user[b].float().clone() if keep_user else None,
                        inputs[rows[b]].head_input())
            for b, (kv, n) in enumerate(pre.rows())
        ]  # fmt: skip

    # --- embedding ------------------------------------------------------------------------
    @torch.no_grad()
    def embed_rows(
        self, users: UserInputs, rows: list[int], suffixes: list[Suffix], use_cache: bool = True,
        block: int = 64,
    ) -> torch.Tensor:  # fmt: skip
        """[len(rows), len(suffixes), d] embeddings: each prefix once, suffixes batched.

        Users go in blocks: a block's prefix states are computed (or fetched) and stacked
        (left-padded) once, each query text runs once on them and every suffix's tail on that
        (:mod:`qanchor.infer.suffix_pass`). Only one block's states are held at a time, so
        memory is flat in users; batch jobs that see each user once pass ``use_cache=False``
        and leave the cache alone.
        """
        parts = [self.suffix_embeds(s) for s in suffixes]
        out = torch.empty(len(rows), len(suffixes), self.model.cfg.emb_dim)
        head_inputs = []
        for b in range(0, len(rows), block):
            entries = self.prefixes(users, rows[b : b + block], use_cache)
            head_inputs += [e.head_input for e in entries]
            pre, summary = self._stack(entries)
            n = len(entries)
            u = self._suffix_pass(pre, [(i, p) for p in parts for i in range(n)], summary)
            out[b : b + n] = u.float().cpu().view(len(parts), n, -1).transpose(0, 1)
        _with_heads(out, suffixes, [users.table.user_ids[r] for r in rows], head_inputs)
        return out

    @torch.no_grad()
    def embed_pairs(
        self, users: UserInputs, rows: list[int], suffixes: list[Suffix],
        pairs: list[tuple[int, int]],
    ) -> torch.Tensor:  # fmt: skip
        """[len(pairs), d]: pair (i, j) is user ``rows[i]`` with ``suffixes[j]``.

        For serving, where merged requests ask for different users x columns: each prefix is
        computed (or fetched from the cache) once, and the pairs run in batches of
        ``max_batch`` whatever their user or suffix, instead of one cross product per request.
        """
        entries = self.prefixes(users, rows)
        parts = [self.suffix_embeds(s) for s in suffixes]
        out = torch.empty(len(pairs), self.model.cfg.emb_dim)
        # Grouped by query text: a pass runs each text once for the pairs that share it.
        order = sorted(range(len(pairs)), key=lambda k: (parts[pairs[k][1]].query, pairs[k][1]))
        for k in range(0, len(order), self.max_batch):
            where = order[k : k + self.max_batch]
            chunk = [pairs[a] for a in where]
            u = self.suffix_forward([entries[i] for i, _ in chunk], [parts[j] for _, j in chunk])
            out[where] = u.float().cpu()
        for j, sfx in enumerate(suffixes):
            at = [k for k, (_, jj) in enumerate(pairs) if jj == j]
            if sfx.head is not None and at:
                ids = [users.table.user_ids[rows[pairs[k][0]]] for k in at]
                out[at] = sfx.head.shifted(
                    out[at], ids, [entries[pairs[k][0]].head_input for k in at]
                )
        return out

    def suffix_forward(self, entries: list[PrefixEntry], parts: list[Part]) -> torch.Tensor:
        """u for each (prefix entry, suffix embeddings) pair; gradients flow into the suffix."""
        pre, summary = self._stack(entries)
        return self._suffix_pass(pre, list(enumerate(parts)), summary)

    def _stack(self, entries: list[PrefixEntry]) -> tuple[PrefixKV, torch.Tensor | None]:
        """The entries' states left-padded to the longest, and their summaries for the head
        [N, n_summary * d_llm] (None for a head without the user shortcut)."""
        pre = PrefixKV.stack([e.kv for e in entries], [e.length for e in entries], self.device)
        summary = None
        if self.model.cfg.user_skip:
            summary = torch.stack([e.user for e in entries]).to(self.device)
        return pre, summary

    def _suffix_pass(
        self, pre: PrefixKV, pairs: list[tuple[int, Part]], summary: torch.Tensor | None = None
    ) -> torch.Tensor:
        """u for each (row of ``pre``, suffix) pair."""
        h = suffix_states(self.kv, pre, pairs, self.max_batch)
        if summary is not None:
            summary = summary[torch.tensor([i for i, _ in pairs], device=summary.device)]
        # The small head stays in fp32 in both paths (its standardisation is precision-sensitive).
        return self.model.head(h.float(), "anchor", summary)

    @torch.no_grad()
    def embed_rows_uncached(
        self, users: UserInputs, rows: list[int], suffixes: list[Suffix]
    ) -> torch.Tensor:
        """Reference path: a full forward over prefix + suffix for every pair, no KV reuse.

        Pairs are batched across users exactly like the cached path, so the two differ only in
        whether the prefix is recomputed per scenario.
        """
        batch = self.prefix_batch(users, rows, left=False)
        pre, summary = self.model.embeds_and_user(batch, *self.batch_vectors(users, batch))
        summary = summary.float()
        lengths = batch.attention_mask.sum(1).tolist()
        parts = [self.suffix_embeds(s) for s in suffixes]
        pairs = [(i, j) for i in range(len(rows)) for j in range(len(suffixes))]
        out = torch.empty(len(rows), len(suffixes), self.model.cfg.emb_dim)
        for k in range(0, len(pairs), self.max_batch):
            chunk = pairs[k : k + self.max_batch]
            seqs = [torch.cat([pre[i, : lengths[i]], parts[j].embeds]) for i, j in chunk]
            m = max(len(x) for x in seqs)
            emb = torch.stack([torch.cat([x, x.new_zeros(m - len(x), x.shape[1])]) for x in seqs])
            mask = torch.tensor(
                [[1] * len(x) + [0] * (m - len(x)) for x in seqs], device=self.device
            )
            h = self.kv.forward(emb, mask)
            at = torch.tensor([lengths[i] + parts[j].at for i, j in chunk], device=self.device)
            h_at = h[torch.arange(len(chunk), device=self.device), at].float()
            rows_at = torch.tensor([i for i, _ in chunk], device=self.device)
            u = self.model.head(h_at, "anchor", summary[rows_at])
            for (i, j), vec in zip(chunk, u, strict=True):
                out[i, j] = vec.float().cpu()
        ids = [users.table.user_ids[r] for r in rows]
        _with_heads(out, suffixes, ids, [users.table.inputs[r].head_input() for r in rows])
        return out


def _with_heads(
    out: torch.Tensor, suffixes: list[Suffix], ids: list[str], head_inputs: list
) -> None:
    """Shift ``out`` [users, suffixes, d] in place by the bag heads of the suffixes with one."""
    for j, sfx in enumerate(suffixes):
        if sfx.head is not None:
            out[:, j] = sfx.head.shifted(out[:, j], ids, head_inputs)
