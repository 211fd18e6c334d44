"""Shared helpers: a benchmark dataset built once, and result writing."""

from __future__ import annotations

import json
import platform
import resource
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent / "data" / "bench"


def bench_dataset(users: int = 2000, seed: int = 0) -> Path:
    """The synthetic dataset the benchmarks use, built once with the small build preset."""
    from qanchor.config import resolve
    from qanchor.data.build import BuildConfig, build_dataset
    from qanchor.data.synth import SynthConfig, synth

    built = DATA / f"built-{users}-{seed}"
    if not (built / "manifest.json").is_file():
        raw = synth(SynthConfig(users=users, seed=seed), DATA / f"raw-{users}-{seed}")
        build_dataset(raw, built, resolve(BuildConfig, "small"))
    return built


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_flops_per_s(
    n: int = 1024, seconds: float = 2.0, dtype: torch.dtype = torch.float32
) -> float:
    """What this CPU sustains on a large matmul of ``dtype`` (the attainable peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is often just the arch)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    line = next((x for x in text.splitlines() if x.startswith("model name")), "")
    return line.split(":", 1)[-1].strip() or platform.machine()


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model()}  # fmt: skip


def write(name: str, result: dict, table: str, results_dir: Path = RESULTS) -> None:
    """Write <results_dir>/<name>.json and <name>.md (default: benchmarks/results), print the table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(
        json.dumps({"machine": machine(), **result}, indent=2) + "\n"
    )
    (results_dir / f"{name}.md").write_text(table + "\n")
    print(table)
