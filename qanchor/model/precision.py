"""Mixed precision: bf16 autocast where the hardware runs it natively, fp32 elsewhere.

Every stage takes a ``bf16`` setting: ``"on"``, ``"off"`` or ``"auto"``. ``auto`` turns bf16
autocast on for CUDA devices with bf16 support and for CPUs with native bf16 dot products
(AVX512-BF16 or AMX): there a 6-layer SmolLM2 forward runs about twice as fast as in fp32.
Weights stay fp32 (autocast only lowers the matmuls), so checkpoints and adapters do not change.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

MODES = ("auto", "on", "off")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    # Linux only; elsewhere we cannot tell, and fp32 is the safe answer.
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return frozenset(line.split(":", 1)[-1].split())


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls are fast on ``device`` (not merely emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    return False


def use_bf16(mode: str, device: torch.device) -> bool:
    """Resolve a ``bf16`` setting (auto/on/off) for ``device``."""
    if mode not in MODES:
        raise ValueError(f"bf16 must be one of {MODES}, not {mode!r}")
    return mode == "on" or (mode == "auto" and native_bf16(device))


def autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when enabled, else a no-op."""
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
