"""The FLOP model of qanchor.infer.capacity against PyTorch's FLOP counter on a real (tiny) model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qanchor.infer.capacity import (
    QWEN25_05B,
    Dims,
    embed_flops,
    forward_flops,
    gpu_hours,
)
from qanchor.infer.engine import Embedder


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize(("new", "cached"), [(40, 0), (12, 40)])
def test_forward_flops_match_the_counter(tiny_model: Path, new: int, cached: int) -> None:
    from transformers import DynamicCache

    emb = Embedder.from_dir(tiny_model)  # LoRA merged, as when embedding
    # Eager attention: its QK^T and AV are plain matmuls the counter sees (the fused CPU kernel
    # of scaled-dot-product attention is not counted); the arithmetic is the same.
    emb.model.causal_lm.set_attn_implementation("eager")
    lm = emb.model.causal_lm.model
    dims = Dims.from_config(emb.model.causal_lm.config)
    width = emb.model.causal_lm.config.hidden_size
    cache = DynamicCache()
    with torch.no_grad():
        if cached:
            lm(inputs_embeds=torch.randn(1, cached, width), past_key_values=cache, use_cache=True)
        mask = torch.ones(1, cached + new, dtype=torch.long)
        counted = _counted(lambda: lm(inputs_embeds=torch.randn(1, new, width), attention_mask=mask,
                                      past_key_values=cache if cached else None, use_cache=bool(cached)))  # fmt: skip
    assert counted == pytest.approx(forward_flops(dims, new, cached), rel=0.02)


def test_qwen_size_and_the_cache_saving() -> None:
    # Qwen2.5-0.5B: 494M parameters, 136M of them the (tied) token embeddings.
    assert QWEN25_05B.params == pytest.approx(358e6, rel=0.01)
    one = embed_flops(QWEN25_05B, prefix=690, suffix=20, scenarios=10)
    # The saving is close to the token-count bound S(L+q)/(L+Sq) of the multi-scenario benchmark.
    bound = 10 * (690 + 20) / (690 + 10 * 20)
    uncached = 10 * forward_flops(QWEN25_05B, 690 + 20)  # prefix and suffix for every scenario
    assert uncached / one == pytest.approx(bound, rel=0.02)
    assert gpu_hours(3600 * 1e12, peak=1e12, mfu=0.5) == pytest.approx(2.0)
