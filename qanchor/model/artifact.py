"""Build a Q-Anchor model from its config, and save/load self-describing model directories.

A model directory holds::

    config.json            format version, qanchor version, ModelConfig, profile featurizer, training facts
    weights.safetensors    every trainable tensor (LoRA, adapters, head, <USER_EMB>)
    tokenizer/             the backbone tokenizer
    data_manifest.json     the manifest of the built dataset it was trained on
    bag_vectorizer.npz     the bag-of-events channel's TF-IDF + SVD (models with bag_dim > 0)

The frozen backbone and event encoder are referenced (``"default"``, ``"tiny"`` or a path), not
copied: they are hundreds of MB and identical across every model trained from them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import qanchor
from qanchor.errors import QAnchorError
from qanchor.model.config import ModelConfig
from qanchor.model.network import QAnchorModel
from qanchor.model.profile import ProfileFeaturizer

if TYPE_CHECKING:
    from qanchor.data.bag import BagVectorizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
BAG_FILE = "bag_vectorizer.npz"
ENCODER_LORA_TARGETS = ["query", "key", "value", "dense"]


def build_model(cfg: ModelConfig) -> QAnchorModel:
    """Load the backbone and encoder named by ``cfg``, add LoRA, and create our modules."""
    from peft import LoraConfig, get_peft_model

    from qanchor.model.backbones import load_backbone, load_text_encoder

    backbone, tokenizer = load_backbone(cfg.backbone, num_layers=cfg.backbone_layers)
    encoder = load_text_encoder(cfg.encoder)
    for p in list(backbone.parameters()) + list(encoder.parameters()):
        p.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # LoRA and our modules start identically for a given seed
        names = {n.rsplit(".", 1)[-1] for n, _ in backbone.named_modules()}
        targets = [t for t in cfg.lora_targets if t in names]
        if cfg.lora_r > 0:
            lora = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=targets,
            )
            backbone = get_peft_model(backbone, lora)
        if cfg.encoder_lora_r > 0:
            enc_names = {n.rsplit(".", 1)[-1] for n, _ in encoder.model.named_modules()}
            enc_lora = LoraConfig(
                r=cfg.encoder_lora_r, lora_alpha=cfg.encoder_lora_r, lora_dropout=cfg.lora_dropout,
                target_modules=[t for t in ENCODER_LORA_TARGETS if t in enc_names],
            )  # fmt: skip
            encoder.model = get_peft_model(encoder.model, enc_lora)
        model = QAnchorModel(cfg, backbone, tokenizer, encoder)
    return model


def encoder_fingerprint(cfg: ModelConfig) -> str:
    """Identifies the frozen encoder's vectors (cache key): name or path plus max length."""
    return f"{Path(cfg.encoder).name if cfg.encoder not in ('default', 'tiny') else cfg.encoder}-{cfg.encoder_max_length}"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors pretraining sets: the trained parameters and the head's input statistics.

    Everything else comes from the referenced models. The statistics are buffers measured once
    before training (``Head.calibrate``); the head was trained on inputs standardised by them,
    so a model loaded without them would embed differently from the one that was trained.
    """
    state = {n: p for n, p in model.named_parameters() if p.requires_grad}
    state |= {n: b for n, b in model.named_buffers() if n in calibration_buffers(model)}
    return {n: t.detach().cpu().contiguous() for n, t in state.items()}


def calibration_buffers(model: torch.nn.Module) -> set[str]:
    """The head's calibration buffers (``head.anchor_shift``...). Models saved before they were
    kept lack them, and load with the identity statistics they were always served with."""
    return {n for n, _ in model.named_buffers() if n.startswith("head.")}


def save_model(
    model: QAnchorModel,
    out: Path,
    featurizer: ProfileFeaturizer,
    manifest: dict,
    extra: dict[str, Any],
) -> None:
    """Write a model directory into ``out`` (the caller makes it atomic)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(out / "weights.safetensors"))
    model.tokenizer.save_pretrained(out / "tokenizer")
    config = {
        "format_version": FORMAT_VERSION,
        "qanchor_version": qanchor.__version__,
        "model": dataclasses.asdict(model.cfg),
        "profile_featurizer": featurizer.to_dict(),
        "data_content_hash": manifest.get("content_hash"),
        **extra,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    (out / "data_manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    if model.bag_vectorizer is not None:
        model.bag_vectorizer.save(out / BAG_FILE)


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model directory, with a clear error if it is not one."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise QAnchorError(f"{model_dir}: not a qanchor model directory (no config.json)")
    config = json.loads(path.read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise QAnchorError(
            f"{model_dir}: model format {config.get('format_version')} is not {FORMAT_VERSION}"
        )
    return config


def load_model(model_dir: str | Path) -> tuple[QAnchorModel, ProfileFeaturizer, dict[str, Any]]:
    """Rebuild a saved model (eval mode) with its profile featurizer and config dict."""
    from safetensors.torch import load_file

    config = read_config(model_dir)
    model = build_model(ModelConfig(**config["model"]))
    state = load_file(str(Path(model_dir) / "weights.safetensors"))
    expected = set(trainable_state(model))
    if set(state) == expected - calibration_buffers(model):
        log.warning("%s: saved without the head's calibration statistics (an older qanchor); "
                    "it embeds as it always did, retrain it to use them", model_dir)  # fmt: skip
    elif set(state) != expected:
        missing, extra = sorted(expected - set(state))[:5], sorted(set(state) - expected)[:5]
        raise QAnchorError(
            f"{model_dir}: weights do not match the config (missing {missing}, unexpected {extra})"
        )
    model.load_state_dict(state, strict=False)
    _, featurizer, model.bag_vectorizer = load_inputs(model_dir, config)
    return model.eval(), featurizer, config


def load_inputs(
    model_dir: str | Path, config: dict[str, Any] | None = None
) -> tuple[ModelConfig, ProfileFeaturizer, BagVectorizer | None]:
    """What a saved model builds its users' inputs from: its config, profile featurizer and bag
    vectorizer (None without a bag channel), without its weights, backbone or encoder."""
    from qanchor.data.bag import BagVectorizer

    config = config or read_config(model_dir)
    cfg = ModelConfig(**config["model"])
    bag = BagVectorizer.load(Path(model_dir) / BAG_FILE) if cfg.bag_dim else None
    return cfg, ProfileFeaturizer.from_dict(config["profile_featurizer"]), bag
