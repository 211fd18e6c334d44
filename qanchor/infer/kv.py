"""Prefix/suffix passes of a decoder: run a prefix once, reuse its keys/values for every suffix.

A prefix that does not depend on the query (a user's history) goes through the decoder once and
its per-layer key/value states are kept; each query then costs only its suffix, which attends to
those states. Prefixes are left-padded, so every row's real tokens end where its suffix starts.

Example::

    engine = KVEngine(causal_lm.model, bf16=False, device=torch.device("cpu"))
    pre = engine.prefix(embeds, mask)              # [B, Lp, d] left-padded -> PrefixKV
    h = engine.suffix(pre, sfx_embeds, sfx_mask)   # [B, Ls, d] hidden states of the suffixes
    u = engine.suffix_at(pre, sfx_embeds, sfx_mask, at)  # [B, d]: h[b, at[b]], cheaper
    # the same h, recomputing the prefix: engine.forward(cat(prefix, suffix) right-padded, mask)

The engine keeps nothing between calls (the decoder's weights and the precision only), so
threads may share it. Keeping prefixes per user is the caller's business: ``PrefixKV.rows``
splits a batch into unpadded rows and ``PrefixKV.stack`` puts any rows back into a batch
(``qanchor.infer.anchor`` caches them per user); the ``llm_untrained`` baseline
(``qanchor.eval.llm_baseline``) runs the same passes on a bare backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from qanchor.model.network import position_ids
from qanchor.model.precision import autocast

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys, values


@dataclass
class PrefixKV:
    """A left-padded batch of prefix states.

    Attributes:
        kv: per layer (keys, values), each [B, kv_heads, n, head_dim].
        mask: [B, n], 1 on real tokens (the last ``length`` positions of each row).
    """

    kv: list[LayerKV]
    mask: torch.Tensor

    def select(self, idx: torch.Tensor) -> PrefixKV:
        """The rows ``idx`` (repeats allowed), e.g. one per (user, query) pair."""
        return PrefixKV([(k[idx], v[idx]) for k, v in self.kv], self.mask[idx])

    def rows(self) -> list[tuple[list[LayerKV], int]]:
        """Each row's unpadded states [kv_heads, length, head_dim] per layer, and its length."""
        lengths = self.mask.sum(1).tolist()
        return [
            ([(k[b, :, -n:].clone(), v[b, :, -n:].clone()) for k, v in self.kv], n)
            for b, n in enumerate(lengths)
        ]

    @classmethod
    def stack(cls, rows: list[list[LayerKV]], lengths: list[int], device) -> PrefixKV:
        """Rows as :meth:`rows` returns them, left-padded with zeros to the longest."""
        n = max(lengths)
        kv = []
        for layer in range(len(rows[0])):
            ks = [left_pad(r[layer][0], n) for r in rows]
            vs = [left_pad(r[layer][1], n) for r in rows]
            kv.append((torch.stack(ks), torch.stack(vs)))
        mask = torch.tensor([[0] * (n - m) + [1] * m for m in lengths], device=device)
        return cls(kv, mask)


class KVEngine:
    """Prefix, suffix and full passes of one decoder (``causal_lm.model``: no LM head).

    Args:
        decoder: a Hugging Face decoder stack taking ``inputs_embeds``, ``attention_mask``,
            ``position_ids`` and ``past_key_values``.
        bf16: run the passes under bf16 autocast.
        device: where the decoder lives (masks are built there).
    """

    def __init__(self, decoder: nn.Module, bf16: bool, device: torch.device) -> None:
        self.decoder, self.bf16, self.device = decoder, bf16, device

    def prefix(self, embeds: torch.Tensor, mask: torch.Tensor) -> PrefixKV:
        """The states of left-padded prefixes [B, Lp, d] with their mask [B, Lp]."""
        return self._prefill([], embeds, mask)

    def extend(self, prefix: PrefixKV, embeds: torch.Tensor) -> PrefixKV:
        """``prefix`` followed by ``embeds`` [B, n, d] (real tokens in every row), as a longer
        prefix; ``prefix`` is not modified."""
        new = torch.ones(embeds.shape[:2], dtype=prefix.mask.dtype, device=prefix.mask.device)
        return self._prefill(prefix.kv, embeds, torch.cat([prefix.mask, new], dim=1))

    def _prefill(self, kv: list[LayerKV], embeds: torch.Tensor, full: torch.Tensor) -> PrefixKV:
        """Cached states ``kv`` (possibly none) followed by ``embeds``' ([B, n, d]; ``full`` is
        the mask over both) as one prefix: the last layer only stores keys and values."""
        from transformers import DynamicCache

        from qanchor.model.decoder import prefill

        cache = DynamicCache(kv) if kv else DynamicCache()
        n = full.shape[1] - embeds.shape[1]
        with autocast(self.bf16, self.device):
            prefill(self.decoder, embeds, full, position_ids(full)[:, n:], cache)
        return PrefixKV([(layer.keys, layer.values) for layer in cache.layers], full)

    def suffix(self, prefix: PrefixKV, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, Ls, d] last-layer states of right-padded suffixes after row-aligned prefixes.

        Positions continue from each row's real prefix length, so a row sees the positions of
        its unpadded prefix + suffix sequence. ``prefix`` is not modified (the cache built here
        concatenates into new tensors), so it can serve any number of suffixes.
        """
        from transformers import DynamicCache

        n = prefix.mask.shape[1]
        full = torch.cat([prefix.mask, mask], dim=1)
        with autocast(self.bf16, self.device):
            out = self.decoder(
                inputs_embeds=embeds,
                attention_mask=full,
                position_ids=position_ids(full)[:, n:],
                past_key_values=DynamicCache(prefix.kv),
                use_cache=True,
            )
        return out.last_hidden_state

    def suffix_at(
        self, prefix: PrefixKV, embeds: torch.Tensor, mask: torch.Tensor, at: torch.Tensor
    ) -> torch.Tensor:
        """[B, d]: :meth:`suffix`'s states at one position ``at[b]`` of each row, the last
        layer computed there only (:mod:`qanchor.model.decoder`)."""
        from transformers import DynamicCache

        from qanchor.model.decoder import hidden_at, one_per_row

        n = prefix.mask.shape[1]
        full = torch.cat([prefix.mask, mask], dim=1)
        keep = one_per_row(mask, at)
        with autocast(self.bf16, self.device):
            return hidden_at(
                self.decoder, embeds, full, position_ids(full)[:, n:], keep,
                DynamicCache(prefix.kv),
            )  # fmt: skip

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor, **kw) -> torch.Tensor:
        """[B, L, d] last-layer states of whole sequences: the uncached reference."""
        with autocast(self.bf16, self.device):
            out = self.decoder(
                inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids(mask), **kw
            )
        return out.last_hidden_state


def left_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """[kvh, L, hd] -> [kvh, n, hd] with zeros in front (masked out by the attention mask)."""
    if x.shape[1] == n:
        return x
    return torch.cat([x.new_zeros(x.shape[0], n - x.shape[1], x.shape[2]), x], dim=1)
