"""Fresh starts of the service: seconds until /readyz is 200, then the first /embed and the next.

    python -m benchmarks.service_start [--starts 3]

Each start is a new ``bentoml serve`` process of the ``small`` model over the 2,000-user
benchmark store (the setup of ``benchmarks.serving_load --model small``). Once /readyz answers
200, one client POSTs /embed for six users one after the other (free-text query, prefixes never
computed before: every request pays a prefix pass), so the first request's extra cost is what a
fresh service still had to load, and the next five are the steady state it is compared with.
The server's own warm-up line (``warmed up <version> (<precision>) in <s> s``) is read from its
log where it has one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, cpu_model, write
from benchmarks.serving_load import free_port, prepare, server_env, setup

NEXT = 5  # requests after the first one, each for a new user
WARM_LINE = re.compile(r"warmed up (\S+) \((\w+)\) in ([0-9.]+) s")


def start_once(env: dict[str, str], auth: dict, users: list[str], query: str, log: Path) -> dict:
    """One fresh server: seconds to ready, then 1 + NEXT sequential /embed latencies (ms)."""
    import httpx

    from services.launch import ServerProcess

    t0 = time.perf_counter()
    with ServerProcess(free_port(), env, log) as server:
        server.wait_ready(timeout=600)
        ready = time.perf_counter() - t0
        lat = []
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for user in users:
                t = time.perf_counter()
                r = http.post("/embed", json={"user_id": user, "query": query}, headers=auth)
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
    warm = WARM_LINE.search(log.read_text())
    return {"ready_s": ready, "first_ms": lat[0], "next_ms": lat[1:],
            "warm_up_s": float(warm[3]) if warm else None,
            "precision": warm[2] if warm else None}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--starts", type=int, default=3)
    args = p.parse_args()
    served, tag = setup("small")
    env, auth = server_env(served)
    users, queries = prepare(env)
    starts = []
    for i in range(args.starts):
        # Users 1.. (not the store's first user, which the service may warm up with), new ones
        # each start: every request computes its user's prefix.
        batch = users[1 + i * (NEXT + 1) : 1 + (i + 1) * (NEXT + 1)]
        starts.append(start_once(env, auth, batch, queries[0], DATA / f"service_start-{i}.log"))
        print(starts[-1], flush=True)
    result = {"model": tag, "cores": os.cpu_count(), "cpu_model": cpu_model(),
              # Without cached bytecode every import compiles its modules: much slower starts.
              "bytecode_cache": not (sys.flags.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE")),
              "starts": starts}  # fmt: skip
    write("service_start", result, table(result))


def table(r: dict) -> str:
    starts = r["starts"]
    precision = next((s["precision"] for s in starts if s["precision"]), "not logged")
    rows = [
        f"## Fresh service starts ({r['model']}, `bentoml serve` on 127.0.0.1, {r['cpu_model']}, "
        f"{r['cores']} cores, {precision}, bytecode cache {'on' if r['bytecode_cache'] else 'off'})\n",
        f"| start | to /readyz 200 (s) | of it warm-up (s) | first /embed (ms) | next {NEXT} /embed mean / max (ms) |",
        "|---|---|---|---|---|",
    ]
    for i, s in enumerate(starts, 1):
        warm = "-" if s["warm_up_s"] is None else f"{s['warm_up_s']:.1f}"
        rows.append(f"| {i} | {s['ready_s']:.1f} | {warm} | {s['first_ms']:.0f} | "
                    f"{np.mean(s['next_ms']):.0f} / {max(s['next_ms']):.0f} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    main()
