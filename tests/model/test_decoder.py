"""The last layer at kept positions only (:mod:`qanchor.model.decoder`) = the full pass there,
in values and in gradients, on tiny random decoders."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from qanchor.model.decoder import hidden_at, prefill, sparse_ok
from qanchor.model.network import position_ids
from qanchor.model.tiny import tiny_backbone


def batch(d: int, left: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[3, 7, d] random embeddings of rows 7, 3 and 5 long, padded in front or behind."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(3, 7, dtype=torch.long)
    for b, n in enumerate((7, 3, 5)):
        mask[b, slice(7 - n, 7) if left else slice(0, n)] = 1
    return torch.randn(3, 7, d, generator=g), mask


def keep_of(mask: torch.Tensor) -> torch.Tensor:
    """Several real positions in row 0, none in row 1, the last real one in row 2."""
    keep = torch.zeros_like(mask, dtype=torch.bool)
    real0 = mask[0].nonzero().flatten()
    keep[0, real0[[0, 3, 6]]] = True
    keep[2, mask[2].nonzero().flatten()[-1]] = True
    return keep


def qwen2_decoder() -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2Model

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return Qwen2Model(cfg)


@pytest.mark.parametrize("left", [True, False])
def test_kept_positions_equal_the_full_pass_in_values_and_gradients(left: bool) -> None:
    model, _ = tiny_backbone(seed=0)
    dec = model.model
    assert sparse_ok(dec)
    emb, mask = batch(dec.config.hidden_size, left)
    keep = keep_of(mask)
    pos = position_ids(mask)
    w = torch.randn(int(keep.sum()), dec.config.hidden_size)

    def run(fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = emb.clone().requires_grad_(True)
        dec.zero_grad(set_to_none=True)
        h = fn(x)
        (h * w).sum().backward()
        # (the token embedding table gets none: the inputs are embeddings)
        grads = [None if p.grad is None else p.grad.clone() for p in dec.parameters()]
        return h.detach(), [x.grad, *grads]

    full, full_grads = run(lambda x: dec(inputs_embeds=x, attention_mask=mask,
                                         position_ids=pos).last_hidden_state[keep])  # fmt: skip
    part, part_grads = run(lambda x: hidden_at(dec, x, mask, pos, keep))
    assert part.shape == (4, dec.config.hidden_size)
    torch.testing.assert_close(part, full, atol=1e-5, rtol=0)
    assert sum(g is not None for g in full_grads) > 10
    for a, b in zip(part_grads, full_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    last_mlp = dec.layers[-1].mlp.down_proj.weight.grad
    assert last_mlp.abs().max() > 0  # the last layer is trained through the kept positions


def test_prefill_stores_the_keys_and_values_of_the_full_pass() -> None:
    model, _ = tiny_backbone(seed=0)
    dec = model.eval().model
    emb, mask = batch(dec.config.hidden_size, left=True)
    want, got = DynamicCache(), DynamicCache()
    with torch.no_grad():
        dec(inputs_embeds=emb, attention_mask=mask, position_ids=position_ids(mask),
            past_key_values=want, use_cache=True)  # fmt: skip
        prefill(dec, emb, mask, position_ids(mask), got)
    assert len(got.layers) == len(want.layers) == dec.config.num_hidden_layers
    for a, b in zip(got.layers, want.layers, strict=True):
        torch.testing.assert_close(a.keys, b.keys, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.values, b.values, atol=1e-6, rtol=0)


def test_other_decoders_take_the_full_pass() -> None:
    dec = qwen2_decoder().eval()
    assert not sparse_ok(dec)
    emb, mask = batch(dec.config.hidden_size, left=False)
    keep = keep_of(mask)
    with torch.no_grad():
        full = dec(inputs_embeds=emb, attention_mask=mask, position_ids=position_ids(mask))
        got = hidden_at(dec, emb, mask, position_ids(mask), keep)
    torch.testing.assert_close(got, full.last_hidden_state[keep], atol=0, rtol=0)
