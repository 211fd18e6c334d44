"""Decoder passes that compute the last layer only at the positions whose output is read.

Every pass of ours reads the last layer at a few positions: <USER_EMB> (the embedding), the
answer tokens (next-token loss), an answer's last token (the semantic tower), and a prefix pass
reads none (only the layer's keys and values, for the suffixes that follow). The rest of that
layer -- query projection, attention, output projection and MLP, ~94% of a SmolLM2 layer's
FLOPs -- is otherwise computed for nothing at every other position: with the ``small`` preset's
4 layers, a fifth to a quarter of each pass.

Here layers 0..L-2 run as Hugging Face runs them (same modules, same causal mask); the last
layer computes keys and values for every position (into the cache, if one is given) and the
rest for the kept positions only. The result equals the full pass at those positions (to float
rounding: the matmuls have other shapes). Decoders other than Llama's (SmolLM2 and the tiny
test backbone are Llama) take the full pass and select.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SPARSE_MODEL_TYPES = ("llama",)


def sparse_ok(decoder: nn.Module) -> bool:
    """Whether ``decoder``'s last layer can be computed at selected positions only."""
    return getattr(decoder.config, "model_type", None) in SPARSE_MODEL_TYPES


def hidden_at(
    decoder: nn.Module, embeds: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor,
    keep: torch.Tensor, cache=None,
) -> torch.Tensor:  # fmt: skip
    """[N, d] last-layer states (after the final norm) at ``keep``, in ``h[keep]`` order.

    Args:
        decoder: the decoder stack (``causal_lm.model``: no LM head).
        embeds: [B, L, d] input embeddings.
        mask: [B, n_past + L] attention mask over the cached and the new positions.
        position_ids: [B, L].
        keep: [B, L] bool, the positions whose state is returned.
        cache: a ``DynamicCache`` holding the first ``n_past`` positions; it gets the new ones.
    """
    if not sparse_ok(decoder):
        return _full(decoder, embeds, mask, position_ids, cache)[keep]
    idx, valid = _slots(keep, mask[:, -keep.shape[1] :])
    h = _run(decoder, embeds, mask, position_ids, cache, idx)
    return h[valid]


def prefill(
    decoder: nn.Module, embeds: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor,
    cache,
) -> None:  # fmt: skip
    """Put every layer's keys and values of ``embeds`` into ``cache``; no output is computed."""
    if not sparse_ok(decoder):
        _full(decoder, embeds, mask, position_ids, cache)
    else:
        _run(decoder, embeds, mask, position_ids, cache, None)


def one_per_row(like: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """[B, L] bool, shaped like ``like``: position ``at[b]`` of each row b (a ``keep``)."""
    keep = torch.zeros(like.shape, dtype=torch.bool, device=like.device)
    keep[torch.arange(len(at), device=like.device), at] = True
    return keep


def _full(decoder, embeds, mask, position_ids, cache) -> torch.Tensor:
    """The whole pass as transformers runs it: [B, L, d] last-layer states."""
    out = decoder(
        inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
        past_key_values=cache, use_cache=cache is not None,
    )  # fmt: skip
    return out.last_hidden_state


def _slots(keep: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, K] positions to compute per row (K = most kept in a row) and which are real.

    A row keeping fewer than K positions fills its spare slots with its first real position
    (a query that attends to something: a fully masked query row gives NaN, even in backward).
    """
    counts = keep.sum(1)
    k = max(int(counts.max()), 1)
    order = torch.sort(keep.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :k]
    valid = torch.arange(k, device=keep.device) < counts[:, None]
    first_real = mask.to(torch.int8).argmax(1, keepdim=True).expand(-1, k)
    return torch.where(valid, order, first_real), valid


def _run(decoder, embeds, mask, position_ids, cache, idx: torch.Tensor | None):
    from transformers.masking_utils import create_causal_mask

    causal = create_causal_mask(
        config=decoder.config, inputs_embeds=embeds, attention_mask=mask,
        past_key_values=cache, position_ids=position_ids,
    )  # fmt: skip
    h = embeds
    rope = decoder.rotary_emb(h, position_ids=position_ids)
    layers = decoder.layers[: decoder.config.num_hidden_layers]
    for layer in layers[:-1]:
        h = layer(
            h, attention_mask=causal, position_embeddings=rope, position_ids=position_ids,
            past_key_values=cache, use_cache=cache is not None,
        )  # fmt: skip
    h = _last_layer(layers[-1], h, rope, mask, cache, idx)
    return None if h is None else decoder.norm(h)


def _last_layer(layer, h, rope, mask, cache, idx):
    """Llama's decoder layer with queries at ``idx`` [B, K] only (None: keys and values only)."""
    from transformers.models.llama.modeling_llama import repeat_kv, rotate_half

    attn = layer.self_attn
    b, n, _ = h.shape
    x = layer.input_layernorm(h)
    rope = tuple(t.expand(b, -1, -1) for t in rope)  # [B, L, head_dim]
    cos, sin = (t.unsqueeze(1) for t in rope)
    k = attn.k_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, n, -1, attn.head_dim).transpose(1, 2)
    k = k * cos + rotate_half(k) * sin
    if cache is not None:
        k, v = cache.update(k, v, attn.layer_idx)
    if idx is None:
        return None
    pick = lambda t: t.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, t.shape[-1]))  # noqa: E731
    hq, xq = pick(h), pick(x)
    q = attn.q_proj(xq).view(b, idx.shape[1], -1, attn.head_dim).transpose(1, 2)
    cq, sq = pick(rope[0]).unsqueeze(1), pick(rope[1]).unsqueeze(1)
    q = q * cq + rotate_half(q) * sq
    # Key j is visible to the query at absolute position p when it is real and j <= p.
    n_past = mask.shape[1] - n
    keys = torch.arange(mask.shape[1], device=h.device)
    allow = (keys <= (idx + n_past).unsqueeze(-1)) & mask.bool().unsqueeze(1)
    groups = attn.num_key_value_groups
    o = F.scaled_dot_product_attention(
        q, repeat_kv(k, groups), repeat_kv(v, groups), attn_mask=allow.unsqueeze(1),
        dropout_p=attn.attention_dropout if attn.training else 0.0, scale=attn.scaling,
    )  # fmt: skip
    hq = hq + attn.o_proj(o.transpose(1, 2).reshape(b, idx.shape[1], -1))
    return hq + layer.mlp(layer.post_attention_layernorm(hq))
