"""Capacity planning for batch embedding: forward FLOPs per user x scenarios, and GPU-hours.

    from qanchor.infer.capacity import QWEN25_05B, Dims, embed_flops, gpu_hours
    per_user = embed_flops(QWEN25_05B, prefix=690, suffix=20, scenarios=10)
    gpu_hours(100e6 * per_user, peak=312e12, mfu=0.3)          # 100M users on A100s

A user costs one prefix forward (user, modal and event tokens) plus, per scenario, one suffix
forward over the query and soft prompt that attends to the cached prefix (the KV cache of
``qanchor.infer.engine``). FLOPs are counted the way dense kernels compute them: 2 per
multiply-add of the decoder's weight matrices (the LM head is not run to embed), plus the
attention products QK^T and AV over the whole visible context (masked positions included, as
PyTorch's scaled-dot-product attention computes them). Norms, activations and the small
projection head are left out (well under 1%). Event texts go through the sentence encoder first;
a frozen encoder's vectors are cached per text, so a refresh only encodes texts not seen before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dims:
    """The shape of a transformer stack, as far as its FLOPs go."""

    layers: int
    hidden: int
    ff: int
    heads: int
    kv_heads: int
    gated: bool = True  # SwiGLU MLP (gate, up, down) as in Llama/Qwen; False: BERT's two matrices

    @property
    def params(self) -> int:
        """Weights in the layers' matrices (no embeddings, norms or biases)."""
        kv = self.hidden // self.heads * self.kv_heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * kv
        mlp = (3 if self.gated else 2) * self.hidden * self.ff
        return self.layers * (attention + mlp)

    @classmethod
    def from_config(cls, config: Any) -> Dims:
        """From a transformers config (Llama/Qwen2-style decoder or BERT-style encoder)."""
        heads = config.num_attention_heads
        return cls(
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            ff=config.intermediate_size,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            gated=getattr(config, "hidden_act", "gelu") in ("silu", "swiglu"),
        )


# Published configs (config.json) of the paper's models.
QWEN25_05B = Dims(layers=24, hidden=896, ff=4864, heads=14, kv_heads=2)  # Qwen2.5-0.5B-Instruct
GTE_BASE = Dims(layers=12, hidden=768, ff=3072, heads=12, kv_heads=12, gated=False)  # gte-base


def forward_flops(d: Dims, new: float, cached: float = 0.0) -> float:
    """FLOPs of ``new`` tokens through the stack, attending to ``cached`` + ``new`` positions."""
    weights = 2.0 * d.params * new
    attention = 4.0 * d.layers * d.hidden * new * (cached + new)  # QK^T and AV
    return weights + attention


def embed_flops(llm: Dims, prefix: float, suffix: float, scenarios: int) -> float:
    """One user's embeddings for ``scenarios`` queries: the prefix once, a suffix per scenario."""
    return forward_flops(llm, prefix) + scenarios * forward_flops(llm, suffix, cached=prefix)


def encoder_flops(enc: Dims, events: float, tokens: float) -> float:
    """Encoding ``events`` event texts of ``tokens`` tokens each with the sentence encoder."""
    return events * forward_flops(enc, tokens)


def gpu_hours(flops: float, peak: float, mfu: float) -> float:
    """Hours of one accelerator with ``peak`` FLOP/s running at model-FLOP utilisation ``mfu``."""
    return flops / (peak * mfu) / 3600.0
