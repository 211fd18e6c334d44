"""Pretraining throughput (samples/s, tokens/s), FLOPs per step and peak memory.

    python -m benchmarks.pretrain_throughput

The tiny preset, and the small preset in fp32 and (where the CPU has it) bf16. Each runs in a
child process: a few warm-up steps, then timed steps on the synthetic benchmark dataset. Peak
memory is the child's peak RSS (model, data, activations, optimiser). FLOPs are counted by
PyTorch's ``FlopCounterMode`` over one more step (forward and backward matmuls and attention),
and set against what this CPU sustains on a 1024^3 matmul of the same precision.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from benchmarks.common import (
    bench_dataset,
    cpu_model,
    machine,
    matmul_flops_per_s,
    peak_rss_mb,
    write,
)

PLAN = {"tiny": {"warmup": 3, "steps": 20}, "small": {"warmup": 2, "steps": 8}}
RUNS = (("tiny", "off"), ("small", "off"), ("small", "on"))


def run_one(preset: str, bf16: str, warmup: int, steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from qanchor.config import resolve
    from qanchor.model import trainer as T
    from qanchor.model.config import PretrainConfig
    from qanchor.model.data import PairSampler
    from qanchor.model.pretrain import micro_step, prepare

    cfg = resolve(PretrainConfig, preset, overrides={"runtime": {"bf16": bf16}})
    rt = T.setup_runtime(cfg.device, cfg.runtime.bf16)
    s = prepare(bench_dataset(), cfg, rt)
    pairs = s.data.pairs[s.data.pairs["split"] == "train"]
    sampler = PairSampler(pairs, s.table.index(), cfg.runtime.seed, cfg.future_pair_prob)
    params = [p for p in s.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    s.model.train()

    def step(k: int) -> int:
        loss, info = micro_step(s, sampler.sample(k, cfg.batch_size))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return info["tokens"]

    for k in range(warmup):
        step(k)
    t0 = time.perf_counter()
    tokens = sum(step(warmup + k) for k in range(steps))
    dt = time.perf_counter() - t0
    with FlopCounterMode(display=False) as counter:
        step(warmup + steps)
    flops = counter.get_total_flops()
    matmul = matmul_flops_per_s(dtype=torch.bfloat16 if rt.bf16 else torch.float32)
    return {
        "preset": preset, "precision": "bf16" if rt.bf16 else "fp32",
        "batch_size": cfg.batch_size, "timed_steps": steps,
        "backbone_layers": cfg.model.backbone_layers, "events_per_source": cfg.model.events_per_source,
        "seconds_per_step": dt / steps, "samples_per_s": steps * cfg.batch_size / dt,
        "tokens_per_s": tokens / dt, "tokens_per_step": tokens / steps,
        "trainable_params": sum(p.numel() for p in params), "peak_rss_mb": peak_rss_mb(),
        "gflop_per_step": flops / 1e9, "achieved_gflop_s": flops / 1e9 / (dt / steps),
        "matmul_gflop_s": matmul / 1e9,
    }  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1:  # child: one preset and precision, JSON on the last line of stdout
        preset, bf16 = sys.argv[1:3]
        print(json.dumps(run_one(preset, bf16, **PLAN[preset])))
        return
    from qanchor.model.precision import native_bf16

    bench_dataset()
    rows = []
    for preset, bf16 in RUNS:
        if bf16 == "on" and not native_bf16(torch.device("cpu")):
            continue  # this CPU has no native bf16: fp32 only
        out = subprocess.run([sys.executable, "-m", "benchmarks.pretrain_throughput", preset, bf16],
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    write("pretrain_throughput", {"machine": machine(), "results": rows}, render(rows))


def render(rows: list[dict]) -> str:
    head = (
        f"## Pretraining throughput (CPU `{cpu_model()}`, {torch.get_num_threads()} threads)\n\n"
        "FLOPs per step are PyTorch's count of one step's forward and backward; the last column "
        "sets the achieved rate against this CPU's 1024^3 matmul in the same precision.\n\n"
    )
    table = "\n".join(
        ["| preset | precision | batch | s/step | samples/s | tokens/s | tokens/step | trainable params "
         "| peak RSS (MB) | GFLOP/step | GFLOP/s achieved / matmul |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
        + [f"| {r['preset']} | {r['precision']} | {r['batch_size']} | {r['seconds_per_step']:.3f} | "
           f"{r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['tokens_per_step']:.0f} | "
           f"{r['trainable_params']:,} | {r['peak_rss_mb']:.0f} | {r['gflop_per_step']:.1f} | "
           f"{r['achieved_gflop_s']:.0f} / {r['matmul_gflop_s']:.0f} "
           f"({r['achieved_gflop_s'] / r['matmul_gflop_s']:.0%}) |"
           for r in rows]
    )  # fmt: skip
    return head + table


if __name__ == "__main__":
    main()
