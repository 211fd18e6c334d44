"""Configs of the Q-Anchor model (architecture, saved with the model) and of pretraining.

``PretrainConfig.model`` is the ``ModelConfig`` to train, so every architecture field is
declared once and set by the same key or flag in pretraining (``--lora-r``, ``--bag-dim``,
``--encoder-max-length``, YAML ``model: {lora_targets: [q_proj, v_proj]}``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from qanchor.config import nested, option, recorded
from qanchor.runtime_config import RuntimeConfig

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ModelConfig:
    """Architecture of a Q-Anchor model; stored in the model directory's ``config.json``."""

    backbone: str = option(
        "default", "causal LM directory, 'default' (SmolLM2-135M-Instruct) or 'tiny'"
    )
    encoder: str = option(
        "default", "sentence encoder directory, 'default' (all-MiniLM-L6-v2) or 'tiny'"
    )
    backbone_layers: int | None = option(
        None, "keep only the first N decoder layers (cheap CPU runs)"
    )
    lora_r: int = option(64, "LoRA rank on the backbone's attention and MLP projections")
    lora_alpha: int = option(32, "LoRA alpha")
    lora_dropout: float = option(0.1, "LoRA dropout")
    lora_targets: list[str] = option(LORA_TARGETS, "module names that get LoRA")
    encoder_lora_r: int = option(
        0, "LoRA rank on the event encoder; 0 = frozen encoder, cached vectors"
    )
    head_hidden: int = option(512, "hidden width of the projection head")
    emb_dim: int = option(128, "output embedding size")
    events_per_source: int = option(
        32, "event tokens per source read from a snapshot (most recent)"
    )
    source_caps: dict[str, int] = option({}, "per-source overrides of events_per_source")
    max_query_tokens: int = option(48, "query text tokens kept")
    max_answer_tokens: int = option(200, "answer tokens kept (semantic tower and next-token loss)")
    encoder_max_length: int = option(64, "tokens per event text in the event encoder")
    # "keep" is the default so a model saved before this field loads as it was trained.
    text_numbers: str = option(
        "keep",
        "numbers in event texts as the event encoder reads them: 'keep', or 'round' (decimals "
        "and 5+-digit integers to one significant digit: amounts stop making every text distinct)",
    )
    user_tokens: bool = option(True, "insert the user and modal tokens (ablation switch)")
    user_skip: bool = option(
        False,
        "the head's hidden layer also reads the user token (a shortcut past the backbone, "
        "for short CPU runs; the paper's head reads the <USER_EMB> state only)",
    )
    whole_history: bool = option(
        False, "modal and user tokens pool every history event (false: the capped event tokens')"
    )
    coarse_pool: str = option(
        "mean", "how coarse tokens pool event vectors: 'mean' (over events) or 'attention'"
    )
    bag_dim: int = option(
        0, "width of the bag-of-events channel (TF-IDF of the whole history, SVD); 0 = off"
    )
    # Filled in at pretraining time (from the run and the data), then fixed for the model's life.
    seed: int = recorded(
        0, "seed of the randomly initialised modules (the run's RuntimeConfig.seed)"
    )
    sources: list[str] = recorded([], "event sources, in prefix order (set from the data)")
    profile_dim: int = recorded(0, "width of the featurised profile (set from the data)")


@dataclass
class PretrainConfig:
    """Settings of ``qanchor pretrain``: the model to train, the runtime, loss and optimisation."""

    model: ModelConfig = nested(ModelConfig, "architecture of the model to train (saved with it)")
    runtime: RuntimeConfig = nested(RuntimeConfig, "seed, precision and feature store of the run")
    # --- loss ---
    temperature: float = option(0.07, "InfoNCE temperature")
    margin: float = option(0.1, "false-negative margin filter")
    margin_filter: bool = option(True, "apply the margin filter (ablation: false)")
    neg_terms: list[str] = option(["uv", "uu", "vv"], "negative families in the InfoNCE partition")
    contrastive_weight: float = option(1.0, "weight of the contrastive loss (0 = ablation)")
    lm_weight: float = option(1.0, "weight of the next-token loss (0 = ablation)")
    lm_shortlist: bool = option(
        False,
        "the next-token softmax runs over the tokens of the training answers only, not the "
        "backbone's whole vocabulary (the full head took 0.7 s of a 3.4 s `small` fp32 step)",
    )
    future_pair_prob: float = option(
        0.5, "chance a sampled pair is D_future rather than a topic pair"
    )
    # --- optimisation ---
    steps: int = option(50_000, "optimiser steps")
    batch_size: int = option(2048, "global batch (pairs per step, across ranks and accumulation)")
    grad_accum: int = option(1, "micro-batches per step on each rank")
    lr: float = option(2e-4, "peak learning rate (AdamW)")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup_steps: int = option(500, "linear warmup steps, then cosine decay to zero")
    clip_grad: float = option(1.0, "gradient norm clip (0 = off)")
    device: str = option("auto", "'auto' (cuda if available), 'cpu' or 'cuda[:i]'")
    checkpoint_every: int = option(1000, "steps between checkpoints (0 = only at the end)")
    log_every: int = option(10, "steps between progress-bar updates of the loss")
    eval_users: int = option(512, "held-out users for the retrieval check at the end")
    eval_batch: int = option(16, "candidates per retrieval batch (chance = 1/eval_batch)")
    max_train_users: int = option(
        0,
        "training users pretraining reads, a seeded sample (0: all): it samples a fixed number "
        "of pairs, so past that many users more only add memory and setup time",
    )

    PRESETS = {
        "tiny": {
            "model": {
                "backbone": "tiny", "encoder": "tiny", "lora_r": 4, "lora_alpha": 8,
                "lora_dropout": 0.0, "head_hidden": 32, "emb_dim": 16, "events_per_source": 3,
                "max_query_tokens": 48, "max_answer_tokens": 64, "user_skip": True,
                "whole_history": True, "bag_dim": 8,
                "text_numbers": "round",
            },
            "runtime": {"bf16": "off"},
            "steps": 12, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "checkpoint_every": 0,
            "log_every": 2, "eval_users": 16, "eval_batch": 8, "lm_shortlist": True,
        },
        # No LoRA dropout: its random masks took 19% of an fp32 `small` step (profiled: 3.17 s,
        # 2.58 s without), and over 3 seeds (bf16) quality did not drop without them:
        # qanchor_tuned synthetic 0.7900 vs 0.7873, MovieLens-100k 0.7853 vs 0.7826
        # (`python -m benchmarks.quality --tag no_lora_dropout --set pretrain.lora_dropout=0`).
        # 4 backbone layers, not 6: every model stage is compute-bound in the backbone, and over
        # 3 seeds (bf16, paired with 6 layers) qanchor_tuned held on synthetic (0.7901 vs
        # 0.7900) and lost 0.0043 +- 0.0067 on MovieLens-100k (0.7810 vs 0.7853), for runs
        # ~30% shorter (`python -m benchmarks.quality --tag layers4 --set
        # pretrain.backbone_layers=4`).
        # The next-token softmax over the answers' tokens only: the full 49,152-token head was
        # ~0.7 s of a 3.4 s fp32 step; MovieLens-100k, 3 seeds (fp32): qanchor_tuned 0.7786
        # against 0.7810 with the full head (bf16, another CPU), paired -0.0024 +- 0.0116
        # (`python -m benchmarks.quality --tag lm_shortlist --set pretrain.lm_shortlist=true`).
        "small": {
            "model": {
                "backbone": "default", "encoder": "default", "backbone_layers": 4, "lora_r": 8,
                "lora_alpha": 16, "lora_dropout": 0.0, "head_hidden": 256, "emb_dim": 128,
                "events_per_source": 8, "max_query_tokens": 24, "max_answer_tokens": 40,
                "user_skip": True, "whole_history": True, "bag_dim": 64,
                "text_numbers": "round",
            },
            "steps": 200, "batch_size": 16, "lr": 1e-3, "warmup_steps": 15,
            "checkpoint_every": 50, "log_every": 5, "eval_users": 256, "eval_batch": 16,
            "lm_shortlist": True, "max_train_users": 20_000,
        },
        "paper": {
            "model": {
                "backbone": "default", "encoder": "default", "lora_r": 64, "lora_alpha": 32,
                "encoder_lora_r": 64, "head_hidden": 512, "emb_dim": 128,
                "events_per_source": 150,
                "source_caps": {"bill": 250, "miniprogram": 150, "spm": 150, "app": 10,
                                "search": 100},
                "whole_history": True, "bag_dim": 128,
                "text_numbers": "round",
            },
            "steps": 50_000, "batch_size": 2048, "lr": 2e-4, "warmup_steps": 500,
        },
    }  # fmt: skip

    def model_config(self, sources: list[str], profile_dim: int) -> ModelConfig:
        """The model to build: ``model`` completed with the data's facts and the run's seed."""
        return dataclasses.replace(
            copy.deepcopy(self.model),
            sources=list(sources),
            profile_dim=profile_dim,
            seed=self.runtime.seed,
        )
