"""Training plumbing: device and precision, distributed setup, schedule, exact-resume checkpoints."""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qanchor.io import atomic_dir


@dataclass
class Runtime:
    """Where and how this process trains."""

    device: torch.device
    rank: int = 0
    world: int = 1
    bf16: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when enabled (see :mod:`qanchor.model.precision`), else a no-op."""
        from qanchor.model.precision import autocast

        return autocast(self.bf16, self.device)


def setup_runtime(device: str = "auto", bf16: str = "auto") -> Runtime:
    """Pick the device and join the process group when launched by torchrun.

    torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; we then use nccl on CUDA and gloo on CPU.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    from qanchor.model.precision import use_bf16

    return Runtime(dev, rank, world, use_bf16(bf16, dev))


def warmup_cosine(warmup: int, total: int):
    """LR multiplier: linear warmup to 1, then cosine decay to 0 at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return f


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    ckpt_dir: Path, step: int, trainable: dict[str, torch.Tensor], optimizer, scheduler
) -> Path:
    """Write ``ckpt_dir/step-XXXXXXXX`` atomically, then drop older checkpoints.

    Holds everything needed for a bit-exact resume: trainable weights, optimiser and scheduler
    state, and every RNG. The data position is the step itself (sampling is a function of it).
    """
    target = ckpt_dir / f"step-{step:08d}"
    with atomic_dir(target) as tmp:
        torch.save(
            {"step": step, "model": trainable, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": rng_state()},
            tmp / "state.pt",
        )  # fmt: skip
    for old in sorted(ckpt_dir.glob("step-*"))[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = sorted(p for p in ckpt_dir.glob("step-*") if (p / "state.pt").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler) -> int:
    """Restore a checkpoint into live objects; returns the step to continue from."""
    state = torch.load(path / "state.pt", weights_only=False, map_location="cpu")
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])


def all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over ranks in one flat all-reduce (data parallelism).

    Done by hand rather than with the DDP wrapper: the model has two towers and conditional
    branches (sources absent from a batch), which DDP handles only with unused-parameter
    tracking on every step; a flat all-reduce after backward is exact and simpler.
    """
    import torch.distributed as dist

    if world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def token_share(labels: torch.Tensor, world: int, ignore: int) -> float:
    """world x (scored tokens here / scored tokens on all ranks); 1.0 in one process.

    ``labels`` are next-token targets with ``ignore`` where nothing is scored.
    """
    if world == 1:
        return 1.0
    import torch.distributed as dist

    counts = torch.tensor([float((labels[:, 1:] != ignore).sum())])
    total = counts.clone()
    dist.all_reduce(total)
    return float(counts * world / total.clamp(min=1.0))
