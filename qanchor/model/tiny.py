"""Tiny random models for tests: a 2-layer Llama and a 2-layer BERT with a byte-level tokenizer.

Nothing is downloaded: the tokenizer is built in memory (the 256 byte symbols, no merges), so any
string round-trips. Weights are a pure function of the seed. Both save with ``save_pretrained``
and load back through ``load_backbone`` / ``load_text_encoder``, the real loading path.

Example::

    model, tok = tiny_backbone(seed=0)
    logits = model(**tok("héllo", return_tensors="pt")).logits   # [1, 6, len(tok)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

    from qanchor.model.text_encoder import TextEncoder

SPECIAL = "<|endoftext|>"
BYTE_VOCAB = 256  # token id == byte value; the special token comes right after


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters.

    Printable bytes map to themselves; the rest are shifted past 255 so none is whitespace or
    a control character, which the byte-level pre-tokenizer relies on.
    """
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping, shift = {}, 0
    for b in range(BYTE_VOCAB):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(BYTE_VOCAB + shift)
            shift += 1
    return mapping


def byte_tokenizer(add_bos: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with no merges: 256 byte tokens plus ``<|endoftext|>`` (id 256).

    ``<|endoftext|>`` is the BOS, EOS and PAD token. With ``add_bos`` every encoding starts with
    it, giving an encoder a fixed first position to pool (like BERT's ``[CLS]``).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {symbol: b for b, symbol in bytes_to_unicode().items()}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(SPECIAL, special=True)])
    if add_bos:
        core.post_processor = processors.TemplateProcessing(
            single=f"{SPECIAL} $A", pair=f"{SPECIAL} $A $B", special_tokens=[(SPECIAL, BYTE_VOCAB)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=SPECIAL,
        eos_token=SPECIAL,
        pad_token=SPECIAL,
        padding_side="right",
        model_max_length=512,
    )


def tiny_backbone(
    seed: int = 0, vocab_extra: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A random 2-layer Llama (hidden 32, 4 heads, 2 KV heads) and its byte-level tokenizer.

    Args:
        seed: weights are identical for identical seeds; the global RNG is left untouched.
        vocab_extra: embedding rows beyond ``len(tokenizer)``, like real checkpoints whose
            matrix is padded past the tokenizer (Qwen2.5); 0 gives ``vocab_size == len(tok)``.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    special = tokenizer.convert_tokens_to_ids(SPECIAL)
    config = LlamaConfig(
        vocab_size=len(tokenizer) + vocab_extra,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,  # as SmolLM2 and Qwen2.5-0.5B
        # ~1/sqrt(hidden): with the usual 0.02 a 32-wide random model's layers add almost
        # nothing to the residual stream, so no input could influence any hidden state.
        initializer_range=0.2,
        bos_token_id=special,
        eos_token_id=special,
        pad_token_id=special,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval(), tokenizer


def tiny_text_encoder(seed: int = 0, pooling: str = "mean") -> TextEncoder:
    """A random 2-layer BERT (hidden 32) with a byte-level tokenizer that prepends a BOS token."""
    from transformers import BertConfig, BertModel

    from qanchor.model.text_encoder import TextEncoder

    tokenizer = byte_tokenizer(add_bos=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    return TextEncoder(model.eval(), tokenizer, pooling=pooling)
