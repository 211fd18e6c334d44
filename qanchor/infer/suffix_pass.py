"""Suffix passes in two stages: a query's text once per user, then each prompt's short tail.

A suffix is ``[query text][soft prompt][<USER_EMB>]`` (:meth:`qanchor.model.layout.Layout.suffix`).
The text comes before the prompt, so under causal attention its states do not depend on the
prompt: after a user's prefix they serve every suffix with that query -- the bare query (the
base embedding) and its tuned prompt in evaluation and in tuning's guard, and the prompt at
every tuning step. Here the text runs once per (user, query) without gradients (it has none to
carry: the model is frozen and the prompt comes after it), and each suffix runs only its tail
(the prompt and <USER_EMB>, 1 to 7 tokens instead of ~20). Same states as one pass over the
whole suffix, to float rounding.

Example::

    parts = [engine.suffix_embeds(Suffix(q)), engine.suffix_embeds(Suffix(q, prompt))]
    h = suffix_states(kv, prefixes, [(0, parts[0]), (0, parts[1]), (1, parts[1])], 64)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from qanchor.infer.kv import KVEngine, PrefixKV


class Part(NamedTuple):
    """A suffix's input embeddings, as the engine runs it."""

    embeds: torch.Tensor  # [Ls, d_llm]: query text, soft prompt, <USER_EMB>
    n_text: int  # the query text's tokens (the first n_text)
    query: str  # the query text (suffixes with the same text share its states)

    @property
    def at(self) -> int:
        """The index of <USER_EMB>: the layout puts it last."""
        return self.embeds.shape[0] - 1


def suffix_states(
    kv: KVEngine, pre: PrefixKV, pairs: list[tuple[int, Part]], max_batch: int
) -> torch.Tensor:
    """[len(pairs), d_llm] last-layer states at <USER_EMB> of (row of ``pre``, suffix) pairs.

    Per query text: its tokens run once on the distinct rows that use it, then the tails run
    grouped by length (no padding), ``max_batch`` pairs a pass. A text that only one suffix
    uses, without gradients (serving one scenario), runs in one pass with it: two passes would
    only copy the states once more (256 users x 12 suffixes, fp32: 6.5 users/s split, 7.0 not).
    """
    by_query: dict[str, list[int]] = {}
    for k, (_, part) in enumerate(pairs):
        by_query.setdefault(part.query, []).append(k)
    states, order = [], []
    for ks in by_query.values():
        rows = sorted({pairs[k][0] for k in ks})
        slot = {r: s for s, r in enumerate(rows)}
        ext = _select(pre, rows)
        first = pairs[ks[0]][1]
        text = first.embeds[: first.n_text]
        if not _shared(pairs, ks):
            text = text[:0]  # the whole suffix is its tail
        if text.shape[0]:
            with torch.no_grad():
                ext = kv.extend(ext, text.expand(len(rows), -1, -1))
        skip = text.shape[0]
        by_tail: dict[int, list[int]] = {}
        for k in ks:
            by_tail.setdefault(pairs[k][1].embeds.shape[0] - skip, []).append(k)
        for n, group in by_tail.items():
            for c in range(0, len(group), max_batch):
                chunk = group[c : c + max_batch]
                tails = torch.stack([pairs[k][1].embeds[skip:] for k in chunk])
                ones = torch.ones(tails.shape[:2], dtype=pre.mask.dtype, device=tails.device)
                at = torch.full((len(chunk),), n - 1, device=tails.device)
                sub = _select(ext, [slot[pairs[k][0]] for k in chunk])
                states.append(kv.suffix_at(sub, tails, ones, at))
                order += chunk
    return torch.cat(states)[torch.argsort(torch.tensor(order, device=states[0].device))]


def _shared(pairs: list[tuple[int, Part]], ks: list[int]) -> bool:
    """Whether the text is worth its own pass: several suffixes read it, or gradients flow
    into the suffix (tuning: the text then runs without them, and nothing back-propagates
    through it)."""
    parts = {id(pairs[k][1]): pairs[k][1] for k in ks}
    return len(parts) > 1 or any(p.embeds.requires_grad for p in parts.values())


def _select(pre: PrefixKV, rows: list[int]) -> PrefixKV:
    """``pre``'s rows (no copy when that is all of them, in order)."""
    if rows == list(range(pre.mask.shape[0])):
        return pre
    return pre.select(torch.tensor(rows, device=pre.mask.device))
