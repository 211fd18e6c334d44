"""Scenario adapters: a soft prompt [P, d_llm] and class prototypes [K, d] per scenario.

Stored as ``<model_dir>/scenarios/<name>/{adapter.safetensors, meta.json}``: a few KB each, so
a new scenario is a new small file next to an unchanged model, plus ``bag_head.npz`` when the
scenario has a bag head (:mod:`qanchor.tune.bag_head`; 0.9 MB at 10k terms and 1,400 training
users). Scenarios tuned together as a cluster share the prompt tensor (each keeps its own
prototypes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from qanchor.io import atomic_dir
from qanchor.tune.bag_head import BagHead


@dataclass
class ScenarioAdapter:
    """What a tuned scenario adds to the base model."""

    name: str
    query: str
    prompt: torch.Tensor  # [P, d_llm]
    prototypes: torch.Tensor  # [K, emb_dim], L2-normalised; row k = class k
    meta: dict = field(default_factory=dict)
    head: BagHead | None = None  # the scenario's bag head, if it has one

    def scores(self, u: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
        """Class probabilities [N, K] from prototype similarities (the tuning objective)."""
        return torch.softmax(u @ self.prototypes.T / temperature, dim=-1)


def adapter_dir(model_dir: str | Path, name: str) -> Path:
    """``<model_dir>/scenarios/<name>``; a name that is not a scenario slug is refused, so no
    adapter is ever written or read outside the model (the contract checks names first)."""
    from qanchor.data.contract import check_scenario_name

    check_scenario_name(name)
    return Path(model_dir) / "scenarios" / name


def save_adapter(model_dir: str | Path, adapter: ScenarioAdapter) -> Path:
    """Write one adapter atomically; returns its directory."""
    from safetensors.torch import save_file

    target = adapter_dir(model_dir, adapter.name)
    with atomic_dir(target) as tmp:
        save_file({"prompt": adapter.prompt.detach().cpu().contiguous(),
                   "prototypes": adapter.prototypes.detach().cpu().contiguous()},
                  str(tmp / "adapter.safetensors"))  # fmt: skip
        if adapter.head is not None:
            adapter.head.save(tmp)
        adapter.meta["bytes"] = sum(f.stat().st_size for f in tmp.iterdir())
        meta = {"name": adapter.name, "query": adapter.query, **adapter.meta}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target


def load_adapters(model_dir: str | Path) -> list[ScenarioAdapter]:
    """Every adapter stored beside a model, sorted by name (none: an empty list)."""
    from safetensors.torch import load_file

    root = Path(model_dir) / "scenarios"
    out = []
    for d in sorted(root.glob("*/")) if root.is_dir() else []:
        if not (d / "meta.json").is_file():
            continue
        meta = json.loads((d / "meta.json").read_text())
        t = load_file(str(d / "adapter.safetensors"))
        out.append(ScenarioAdapter(meta["name"], meta["query"], t["prompt"], t["prototypes"],
                                   meta, BagHead.load(d)))  # fmt: skip
    return out
