"""Pretraining throughput (samples/s, tokens/s) and peak memory for the tiny and small presets.

    python -m benchmarks.pretrain_throughput

Each preset runs in a child process: a few warm-up steps, then timed steps on the synthetic
benchmark dataset. Peak memory is the child's peak RSS (model, data, activations, optimiser).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.common import bench_dataset, peak_rss_mb, write

PLAN = {"tiny": {"warmup": 3, "steps": 20}, "small": {"warmup": 2, "steps": 8}}


def run_one(preset: str, warmup: int, steps: int) -> dict:
    import torch

    from qanchor.config import resolve
    from qanchor.model import trainer as T
    from qanchor.model.config import PretrainConfig
    from qanchor.model.data import PairSampler
    from qanchor.model.pretrain import micro_step, prepare

    cfg = resolve(PretrainConfig, preset)
    rt = T.setup_runtime(cfg.device, cfg.runtime.bf16)
    s = prepare(bench_dataset(), cfg, rt)
    pairs = s.data.pairs[s.data.pairs["split"] == "train"]
    sampler = PairSampler(pairs, s.table.index(), cfg.runtime.seed, cfg.future_pair_prob)
    params = [p for p in s.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    s.model.train()
    tokens, t0 = 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0, tokens = time.perf_counter(), 0
        loss, info = micro_step(s, sampler.sample(step, cfg.batch_size))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += info["tokens"]
    dt = time.perf_counter() - t0
    return {
        "preset": preset, "batch_size": cfg.batch_size, "timed_steps": steps,
        "backbone_layers": cfg.model.backbone_layers, "events_per_source": cfg.model.events_per_source,
        "seconds_per_step": dt / steps, "samples_per_s": steps * cfg.batch_size / dt,
        "tokens_per_s": tokens / dt, "tokens_per_step": tokens / steps,
        "trainable_params": sum(p.numel() for p in params), "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1:  # child: one preset, JSON on the last line of stdout
        print(json.dumps(run_one(sys.argv[1], **PLAN[sys.argv[1]])))
        return
    bench_dataset()
    rows = []
    for preset in PLAN:
        out = subprocess.run([sys.executable, "-m", "benchmarks.pretrain_throughput", preset],
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = "\n".join(
        ["| preset | batch | s/step | samples/s | tokens/s | tokens/step | trainable params | peak RSS (MB) |",
         "|---|---|---|---|---|---|---|---|"]
        + [f"| {r['preset']} | {r['batch_size']} | {r['seconds_per_step']:.3f} | {r['samples_per_s']:.1f} | "
           f"{r['tokens_per_s']:.0f} | {r['tokens_per_step']:.0f} | {r['trainable_params']:,} | {r['peak_rss_mb']:.0f} |"
           for r in rows]
    )  # fmt: skip
    write("pretrain_throughput", {"results": rows}, "## Pretraining throughput (CPU)\n\n" + table)


if __name__ == "__main__":
    main()
