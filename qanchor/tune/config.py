"""Config of scenario soft-prompt tuning (kept free of heavy imports for the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from qanchor.config import nested, option
from qanchor.runtime_config import EmbedRuntimeConfig


@dataclass
class TuneConfig:
    """Settings of ``qanchor tune``."""

    n_prompt: int = option(6, "soft prompt tokens per scenario (paper: 6 best)")
    steps: int = option(500, "optimiser steps per scenario (or per cluster)")
    batch_size: int = option(32, "labelled users per step (class-balanced)")
    lr: float = option(1e-2, "Adam learning rate of prompts and prototypes")
    temperature: float = option(0.1, "softmax temperature over prototype similarities")
    share: str = option("auto", "'none': a prompt per scenario; 'cluster': one per query cluster; "
                        "'auto': clusters only for scenarios with fewer than min_positives")  # fmt: skip
    n_clusters: int = option(3, "query clusters for shared prompts")
    min_positives: int = option(
        50, "in 'auto', scenarios with fewer training positives share a prompt"
    )
    val_guard: bool = option(
        True,
        "keep a tuned prompt only if its linear-probe AUC on validation users beats the untuned "
        "query's; otherwise store an empty prompt (the scenario serves the base embedding)",
    )
    bag_head_step: float = option(
        0.3,
        "a bag head per scenario (qanchor.tune.bag_head: cross-fitted logistic regression on the "
        "whole-history TF-IDF stacked with LightGBM on the tabular input) shifts the unit "
        "embedding along the label axis by this much per sd of its logit; 0 = no heads. "
        "MovieLens, 3 seeds, no head guard: 0.1 -> 0.7783, 0.3 -> 0.7824, 1.0 -> 0.7821",
    )
    bag_head_guard: bool = option(
        False,
        "drop a bag head whose val probe AUC is not higher than without it (the verdict is "
        "recorded in meta.json either way). Off: on ~100 val users the verdict is mostly noise; "
        "MovieLens, 3 seeds: guarded 0.7757, every head kept 0.7783 (step 0.1)",
    )
    guard_users: int = option(
        1500,
        "users per split (train, val) the validation guard embeds, a seeded sample (0: all): "
        "bounds its cost on large user bases (every user of a 2,000-user build). Not smaller: "
        "there a 600-user sample rejected 6 of 12 prompts (all users: 3), mean tuned AUC -0.005",
    )
    train_users: int = option(
        1500,
        "training users the prompts and prototypes train on, a seeded sample shared by every "
        "scenario (0: all): their prefixes fit the prefix cache (1,500 users of the small "
        "model: ~1 GB), so the prompt steps cost the same on 2,000 or 100,000 users. Bag heads "
        "still fit on every training user",
    )
    runtime: EmbedRuntimeConfig = nested(
        EmbedRuntimeConfig, "seed, precision, feature store and prefix cache budget of tuning"
    )
    scenarios_per_task: int = option(
        1,
        "scenarios per orchestrated tune task (0: all in one); a task shares one prefix cache "
        "and can share prompts within it, a task per scenario parallelises across workers",
    )

    PRESETS = {
        "tiny": {
            "steps": 6,
            "batch_size": 8,
            "n_prompt": 2,
            "min_positives": 5,
            "n_clusters": 2,
            "runtime": {"bf16": "off"},
            "scenarios_per_task": 0,
        },
        # On one CPU machine, per-task model loads and prefix passes would dominate: one task.
        "small": {"steps": 40, "batch_size": 32, "lr": 2e-2, "scenarios_per_task": 0},
        "paper": {"steps": 500, "batch_size": 256, "lr": 1e-2, "share": "none"},
    }
