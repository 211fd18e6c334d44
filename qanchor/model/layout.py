"""Token layout of the anchor and semantic towers, and batch collation.

Anchor tower sequence (one row per user-query pair)::

    "User:" <USER> <MODAL>xM " bill:" <EVENT>xn ... " profile:" <EVENT> " history:" <EVENT>
    "\\nQuery:"                                                              <- prefix (KV-cacheable)
    " <query>" <PROMPT>xP <USER_EMB>                                         <- suffix (per scenario)
    "\\nAnswer: <answer>" <eos>                                               <- training only

Placeholders are not vocabulary tokens: each position carries a *kind*, and the model writes
encoder outputs, soft prompts or the learned <USER_EMB> vector into the input embeddings at the
positions of that kind. So no tokenizer surgery is needed and any causal LM works as backbone.
The prefix depends only on the user, never on the query: that is what makes its KV cache
shareable across scenarios. The "\\nQuery:" marker every query starts with closes the prefix, so
it runs once per user instead of once per (user, scenario): the same token sequence, fewer
tokens per suffix. Event tokens are each source's most recent events; the modal and user tokens
summarise the whole history (``UserInput.bag``, with ``ModelConfig.whole_history``), and the
" history:" token is the bag-of-events channel (``UserInput.bag_vec``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

TEXT, USER, MODAL, EVENT, PROMPT, USER_EMB = range(6)
IGNORE = -100


def no_bag() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)


@dataclass
class UserInput:
    """One user's prefix input.

    Attributes:
        events: (source index, text ids) of the most recent events, oldest first; sources in
            model order. They become event tokens.
        profile: featurised tabular source, or None.
        bag: the whole history as (source index, text id, count) arrays over distinct texts:
            the coarse tokens pool over it (empty: they pool over ``events``).
        bag_vec: the bag-of-events channel's vector (reduced TF-IDF), or None.
        bag_tfidf: the whole history's TF-IDF row (term indices, values) in the model's bag
            vocabulary, read by the scenarios' bag heads (:mod:`qanchor.tune.bag_head`).
    """

    events: list[tuple[int, list[int]]]
    profile: np.ndarray | None = None
    bag: tuple[np.ndarray, np.ndarray, np.ndarray] = field(default_factory=no_bag)
    bag_vec: np.ndarray | None = None
    bag_tfidf: tuple[np.ndarray, np.ndarray] | None = None

    def head_input(self) -> tuple:
        """What a scenario's bag head reads (:data:`qanchor.tune.bag_head.HeadInput`)."""
        return self.bag_tfidf, self.profile


@dataclass
class Segment:
    """A token segment: ids, kinds, and (for the prefix) the event slots it contains."""

    ids: list[int]
    kinds: list[int]
    ev_text: list[int]
    ev_source: list[int]
    labels: list[int] | None = None
    bag: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the prefix's UserInput.bag


class Layout:
    """Builds token segments for a tokenizer, a source list and the model's switches."""

    def __init__(
        self, tokenizer, sources: list[str], has_profile: bool, user_tokens: bool,
        max_query_tokens: int, max_answer_tokens: int, has_bag: bool = False,
    ) -> None:  # fmt: skip
        self.tok, self.sources, self.has_profile = tokenizer, sources, has_profile
        self.has_bag = has_bag
        self.user_tokens, self.max_q, self.max_a = user_tokens, max_query_tokens, max_answer_tokens
        enc = self._encode
        self.head_ids = enc("User:")
        self.source_ids = [enc(f" {s}:") for s in sources]
        self.profile_ids = enc(" profile:")
        self.bag_ids = enc(" history:")
        self.query_ids, self.answer_ids = enc("\nQuery:"), enc("\nAnswer:")
        self.eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.n_modal = len(sources) + int(has_profile) + int(has_bag)

    def _encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def prefix(self, user: UserInput) -> Segment:
        """The user's prefix segment (depends on the user only)."""
        ids, kinds = list(self.head_ids), [TEXT] * len(self.head_ids)
        if self.user_tokens:
            ids += [self.pad] * (1 + self.n_modal)
            kinds += [USER] + [MODAL] * self.n_modal
        seg = Segment(ids, kinds, [], [], bag=user.bag)
        for s, text_ids in user.events:
            if not text_ids:
                continue
            seg.ids += self.source_ids[s] + [self.pad] * len(text_ids)
            seg.kinds += [TEXT] * len(self.source_ids[s]) + [EVENT] * len(text_ids)
            seg.ev_text += list(text_ids)
            seg.ev_source += [s] * len(text_ids)
        # Dense sources close the prefix, one event slot each, in this fixed order.
        for present, label in ((self.has_profile, self.profile_ids), (self.has_bag, self.bag_ids)):
            if present:
                seg.ids += label + [self.pad]
                seg.kinds += [TEXT] * len(label) + [EVENT]
        seg.ids += self.query_ids
        seg.kinds += [TEXT] * len(self.query_ids)
        return seg

    def suffix(self, query: str, n_prompt: int = 0) -> Segment:
        """The query suffix: query text, soft prompt slots, then <USER_EMB> (after the prefix's
        "\\nQuery:")."""
        q = self._encode(" " + query)[: self.max_q]
        ids = q + [self.pad] * (n_prompt + 1)
        return Segment(ids, [TEXT] * len(q) + [PROMPT] * n_prompt + [USER_EMB], [], [])

    def answer(self, answer: str) -> Segment:
        """The answer continuation of the anchor tower, scored by the next-token loss."""
        a = self._encode(" " + answer)[: self.max_a] + [self.eos]
        ids = self.answer_ids + a
        return Segment(ids, [TEXT] * len(ids), [], [], [IGNORE] * len(self.answer_ids) + a)

    def semantic(self, answer: str) -> list[int]:
        """The semantic tower's input: the answer alone, ending in eos (the pooled token)."""
        return self._encode(answer)[: self.max_a] + [self.eos]


@dataclass
class Batch:
    """A padded batch for the backbone plus the encoder inputs of its event slots."""

    input_ids: torch.Tensor  # [B, L]
    kinds: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    labels: torch.Tensor | None  # [B, L] or None
    ev_text: torch.Tensor  # [T] text ids of regular events, in slot order
    ev_source: torch.Tensor  # [T]
    ev_example: torch.Tensor  # [T]
    profile: torch.Tensor | None  # [B, profile_dim]
    bag_text: torch.Tensor  # [N] whole-history distinct texts of all rows
    bag_source: torch.Tensor  # [N]
    bag_example: torch.Tensor  # [N]
    bag_weight: torch.Tensor  # [N] event counts
    bag_vec: torch.Tensor | None  # [B, bag_dim]

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()
        }
        return Batch(**moved)


def pad(seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    """[B, max_len] LongTensor, padded right (training) or left (cached prefixes)."""
    n = max((len(s) for s in seqs), default=0)
    rows = [([value] * (n - len(s)) + s) if left else (s + [value] * (n - len(s))) for s in seqs]
    return torch.tensor(rows, dtype=torch.long).view(len(seqs), n)


def collate(
    rows: list[list[Segment]], users: list[UserInput | None], pad_id: int, left: bool = False
) -> Batch:
    """Concatenate each row's segments, pad, and gather the event slots in row-major order.

    Args:
        rows: each row's segments (a prefix, if any, first).
        users: each row's :class:`UserInput` (its dense vectors), or None for rows without one.
        pad_id: padding token id.
        left: pad on the left (cached prefixes) instead of the right (training).
    """
    ids, kinds, labels, ev_text, ev_source, ev_example = [], [], [], [], [], []
    bags: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for b, segs in enumerate(rows):
        ids.append([i for s in segs for i in s.ids])
        kinds.append([k for s in segs for k in s.kinds])
        labels.append([lab for s in segs for lab in (s.labels or [IGNORE] * len(s.ids))])
        for s in segs:
            ev_text += s.ev_text
            ev_source += s.ev_source
            ev_example += [b] * len(s.ev_text)
            if s.bag is not None and len(s.bag[0]):
                bags.append((*s.bag, np.full(len(s.bag[0]), b)))
    input_ids = pad(ids, pad_id, left)
    mask = pad([[1] * len(r) for r in ids], 0, left)
    has_labels = any(s.labels is not None for segs in rows for s in segs)
    src, txt, cnt, ex = (np.concatenate(parts) for parts in zip(*bags, strict=True)) if bags else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    )  # fmt: skip
    return Batch(
        input_ids, pad(kinds, TEXT, left), mask, pad(labels, IGNORE, left) if has_labels else None,
        torch.tensor(ev_text, dtype=torch.long), torch.tensor(ev_source, dtype=torch.long),
        torch.tensor(ev_example, dtype=torch.long), _dense(users, "profile"),
        torch.from_numpy(txt.astype(np.int64)), torch.from_numpy(src.astype(np.int64)),
        torch.from_numpy(ex.astype(np.int64)), torch.from_numpy(cnt.astype(np.float32)),
        _dense(users, "bag_vec"),
    )  # fmt: skip


def _dense(users: list[UserInput | None], name: str) -> torch.Tensor | None:
    """[B, dim] stack of a dense per-user vector, or None when the rows have none."""
    vecs = [getattr(u, name) if u is not None else None for u in users]
    if not vecs or vecs[0] is None:
        return None
    return torch.from_numpy(np.stack(vecs).astype(np.float32))
