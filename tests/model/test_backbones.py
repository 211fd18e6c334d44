"""Backbones and event encoders: tiny random models, the real loading path, the PyPI defaults."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from qanchor.errors import QAnchorError
from qanchor.model import backbones
from qanchor.model.backbones import (
    TextEncoder,
    default_encoder_path,
    ensure_default_backbone,
    load_backbone,
    load_gguf_backbone,
    load_text_encoder,
    read_pooling,
    tiny_backbone,
    tiny_text_encoder,
    truncate_layers,
)
from qanchor.model.tiny import byte_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: every load is local_files_only

UNICODE = "Grüße, 世界! café 🙂 tab\tnewline\n"


def _logits(model, tokenizer, text: str = "hello world") -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    model, tok = tiny_backbone(seed=3)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_tiny_backbone_shapes_and_seed_determinism():
    rng_before = torch.random.get_rng_state()
    model, tok = tiny_backbone(seed=0)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched
    batch = tok(["ab", "abcd"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert out.logits.shape == (2, 4, len(tok)) and model.config.vocab_size == len(tok)
    assert out.hidden_states[-1].shape == (2, 4, 32) and len(model.model.layers) == 2
    same, _ = tiny_backbone(seed=0)
    other, _ = tiny_backbone(seed=1)
    assert torch.equal(_logits(model, tok), _logits(same, tok))
    assert not torch.allclose(_logits(model, tok), _logits(other, tok))


def test_tiny_backbone_vocab_extra_pads_the_embedding():
    model, tok = tiny_backbone(vocab_extra=7)
    assert model.config.vocab_size == len(tok) + 7
    assert _logits(model, tok).shape[-1] == len(tok) + 7


def test_byte_tokenizer_round_trips_unicode_and_has_special_tokens():
    tok = byte_tokenizer()
    ids = tok(UNICODE).input_ids
    assert ids == list(UNICODE.encode("utf-8"))  # one token per byte, id == byte value
    assert tok.decode(ids) == UNICODE
    assert tok.bos_token == tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id == 256 and len(tok) == 257
    with_special = tok("hi<|endoftext|>").input_ids
    assert with_special == [104, 105, 256]
    assert tok.decode(with_special, skip_special_tokens=True) == "hi"
    assert byte_tokenizer(add_bos=True)("hi").input_ids == [256, 104, 105]


def test_save_then_load_backbone_gives_identical_logits(tiny_dir: Path):
    original, tok = tiny_backbone(seed=3)
    model, loaded_tok = load_backbone(tiny_dir)
    assert not model.training
    assert loaded_tok(UNICODE).input_ids == tok(UNICODE).input_ids
    assert torch.equal(_logits(model, loaded_tok, UNICODE), _logits(original, tok, UNICODE))
    half, _ = load_backbone(str(tiny_dir), dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16


def test_tiny_is_a_path_alias_for_the_random_test_models():
    model, tok = load_backbone("tiny", num_layers=1, dtype=torch.float64)
    assert len(model.model.layers) == 1 and next(model.parameters()).dtype == torch.float64
    reference, _ = tiny_backbone()
    assert torch.equal(model.model.embed_tokens.weight.float(), reference.model.embed_tokens.weight)
    assert load_text_encoder("tiny").encode(["x", "y"]).shape == (2, 32)


def test_load_backbone_rejects_a_folder_without_config(tmp_path: Path):
    with pytest.raises(QAnchorError, match="no config.json"):
        load_backbone(tmp_path)


def test_num_layers_truncation_still_runs_and_generates(tiny_dir: Path):
    from transformers import DynamicCache

    full, tok = load_backbone(tiny_dir)
    model, _ = load_backbone(tiny_dir, num_layers=1)
    assert len(model.model.layers) == 1 and model.config.num_hidden_layers == 1
    assert not torch.allclose(_logits(model, tok), _logits(full, tok))  # a layer really went
    ids = tok("user:", return_tensors="pt").input_ids
    cache = DynamicCache(config=model.config)
    out = model.generate(
        ids, max_new_tokens=3, min_new_tokens=3, do_sample=False, past_key_values=cache
    )
    assert out.shape == (1, ids.shape[1] + 3)
    assert len(cache.layers) == 1 and cache.get_seq_length() == ids.shape[1] + 2
    with pytest.raises(QAnchorError, match="num_layers"):
        load_backbone(tiny_dir, num_layers=3)


def test_truncate_layers_cuts_layer_types_too():
    from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=257, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True, sliding_window=4,
        max_window_layers=1,
    )  # fmt: skip
    model = truncate_layers(Qwen2ForCausalLM(config).eval(), 2)
    assert model.config.layer_types == ["full_attention", "sliding_attention"]
    cache = DynamicCache(config=model.config)
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, min_new_tokens=2,
                         do_sample=False, past_key_values=cache, pad_token_id=0)  # fmt: skip
    assert out.shape == (1, 5) and len(cache.layers) == 2


def test_encode_keeps_input_order_and_matches_forward():
    enc = tiny_text_encoder(seed=0)
    texts = ["a", "a much longer text about bills", "mid length", "zz", "ünïcödé ✓"]
    vecs = enc.encode(texts, batch_size=2)  # several batches, reordered by length inside
    assert vecs.shape == (5, enc.dim) and enc.dim == 32 and vecs.dtype == torch.float32
    assert torch.allclose(enc.encode(texts[::-1], batch_size=2).flip(0), vecs, atol=1e-6)
    with torch.no_grad():
        single = torch.cat([enc(**enc.tokenize([t])) for t in texts])
    assert torch.allclose(single, vecs, atol=1e-5)  # padding does not leak into the pool
    assert enc.encode([]).shape == (0, 32)


def test_encode_leaves_the_training_mode_as_it_was():
    enc = tiny_text_encoder()
    assert not enc.training and not enc.model.training
    enc.encode(["x"])
    assert not enc.model.training
    enc.train()
    enc.encode(["x"])
    assert enc.training and enc.model.training


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_text_encoder_round_trip_reads_pooling(tmp_path: Path, pooling: str):
    enc = tiny_text_encoder(seed=1, pooling=pooling)
    enc.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "1_Pooling" / "config.json").read_text())
    assert cfg["pooling_mode_cls_token"] == (pooling == "cls")
    loaded = load_text_encoder(tmp_path)
    assert loaded.pooling == pooling and not loaded.normalize
    texts = ["one", "two words", "three words here"]
    assert torch.allclose(loaded.encode(texts), enc.encode(texts), atol=1e-6)
    batch = loaded.tokenize(texts)
    with torch.no_grad():
        hidden = loaded.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    expected = hidden[:, 0] if pooling == "cls" else (hidden * mask).sum(1) / mask.sum(1)
    assert torch.allclose(loaded.encode(texts), expected, atol=1e-5)


def test_read_pooling_defaults_and_errors(tmp_path: Path):
    assert read_pooling(tmp_path) == ("mean", False)  # plain HF folder: mean, no normalisation
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_max_tokens": true}')
    with pytest.raises(QAnchorError, match="pooling"):
        read_pooling(tmp_path)
    with pytest.raises(QAnchorError, match="pooling"):
        TextEncoder(tiny_text_encoder().model, byte_tokenizer(), pooling="max")


def test_default_encoder_encodes_similar_sentences_closer():
    path = default_encoder_path()
    assert (path / "model.safetensors").is_file() and (path / "1_Pooling" / "config.json").is_file()
    enc = load_text_encoder("default")
    assert enc.dim == 384 and enc.pooling == "mean" and enc.normalize
    vecs = enc.encode(
        ["The user paid the electricity bill.", "Paid the power utility invoice.",
         "Searched for running shoes on sale."]
    )  # fmt: skip
    assert vecs.shape == (3, 384)
    assert torch.allclose(vecs.norm(dim=1), torch.ones(3), atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3


def _fake_convert(gguf: Path, out: Path) -> None:
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")


def test_ensure_default_backbone_is_atomic_and_cached(tmp_path: Path, monkeypatch):
    def failing(gguf: Path, out: Path) -> None:
        _fake_convert(gguf, out)
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(backbones, "convert_gguf", failing)
    with pytest.raises(RuntimeError):
        ensure_default_backbone(tmp_path)
    assert list((tmp_path / "backbones").iterdir()) == []  # no half folder, no partial left
    # An hour-old partial was left by a killed conversion and goes; a fresh one may be a live
    # conversion in another process and stays.
    stale, live = (tmp_path / "backbones" / f".smollm2-135m-instruct.partial-{n}" for n in "ab")
    stale.mkdir()
    live.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    calls = []
    monkeypatch.setattr(
        backbones, "convert_gguf", lambda g, o: calls.append(o) or _fake_convert(g, o)
    )
    target = ensure_default_backbone(tmp_path)
    assert target == tmp_path / "backbones" / "smollm2-135m-instruct"
    assert (target / "config.json").is_file() and len(calls) == 1
    assert calls[0].name.startswith(".smollm2-135m-instruct.partial-")  # written aside, renamed
    assert not stale.exists() and live.exists()
    assert ensure_default_backbone(tmp_path) == target and len(calls) == 1  # cached
    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path))
    assert ensure_default_backbone() == target and len(calls) == 1


@pytest.mark.slow
def test_default_backbone_conversion_matches_gguf_logits(tmp_path: Path):
    folder = ensure_default_backbone(tmp_path)
    start = time.perf_counter()
    assert ensure_default_backbone(tmp_path) == folder
    assert time.perf_counter() - start < 0.1
    model, tok = load_backbone(folder)
    gguf_model, gguf_tok = load_gguf_backbone()
    text = "Query: Will this user repay a cash loan? The user paid every bill on time."
    assert tok(text).input_ids == gguf_tok(text).input_ids
    assert tok.chat_template == gguf_tok.chat_template and tok.chat_template
    assert torch.allclose(_logits(model, tok, text), _logits(gguf_model, gguf_tok, text), atol=1e-4)
    small, _ = load_backbone(folder, num_layers=4)
    assert len(small.model.layers) == 4 and _logits(small, tok).shape[-1] == 49152


def test_cache_root_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path))
    assert backbones.cache_root() == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QANCHOR_CACHE", "~/cache")
    assert backbones.cache_root() == tmp_path / "home" / "cache"
    # An empty variable is unset: the default under the home read now, not at import.
    monkeypatch.setenv("QANCHOR_CACHE", "")
    assert backbones.cache_root() == tmp_path / "home" / ".cache" / "qanchor"


def test_a_gguf_file_is_parsed_once_while_converting_and_gguf_is_restored(tmp_path: Path):
    import gguf
    import numpy as np

    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("answer", 42)
    w.add_tensor("t", np.arange(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    reader, names = gguf.GGUFReader, gguf.get_tensor_name_map
    with backbones._gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # transformers passes str or Path
        assert first.fields["answer"].contents() == 42
        assert np.array_equal(first.tensors[0].data, np.arange(4, dtype=np.float32))
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, names)
