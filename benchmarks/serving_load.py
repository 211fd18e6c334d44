"""The service under load, through HTTP: a real ``bentoml serve`` on 127.0.0.1.

    python -m benchmarks.serving_load [--model auto|promoted|small] [--seconds 60] [--clients 16]

*Load*: CLIENTS concurrent clients for SECONDS (and at most MAX_REQUESTS requests in all), each
POSTing /embed for a random user of a pool of POOL users with one of ten queries; reports
latency p50/p99, requests/s, errors, the server's resident memory (sampled every second)
against the prefix-cache bound, and the cache counters. *Cache speedup*: embed_batch of one
user x S queries (S = 1, 10), sequential requests, for users never requested before (the
prefix is computed) and then the same users again (the prefix comes from the cache).

Model: ``promoted`` serves the project's promoted model (``.bentoml``, after ``make run``) with
the users of its run; ``small`` registers the ``small`` architecture untrained (SmolLM2 cut to 6
layers; speed does not depend on the weights) in a private store over the 2,000-user benchmark
dataset; ``auto`` picks ``promoted`` when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, ROOT, bench_dataset, write

# The pool's prefixes (~0.5 MB each for the small model) exceed the cache bound: half hit.
POOL, MAX_REQUESTS, CACHE_BYTES, SPEEDUP_USERS = 256, 50_000, 64 << 20, 24


def setup(model: str) -> tuple[dict[str, str], str]:
    """Environment of the server (model store, feature data) and which model it serves."""
    project = ROOT.parent / ".bentoml"
    if model == "promoted" or (
        model == "auto" and (project / "registry" / "qanchor.json").is_file()
    ):
        os.environ["BENTOML_HOME"] = str(project)
        from services.launch import feature_data

        data = feature_data(os.environ, ROOT.parent / "runs" / "airflow")
        from qanchor import registry

        return {
            "BENTOML_HOME": str(project),
            "QANCHOR_FEATURE_DATA": str(data),
        }, registry.promoted().tag
    os.environ["BENTOML_HOME"] = str(DATA / "bentoml")
    from benchmarks.multi_scenario import small_model
    from qanchor import registry

    built = bench_dataset()
    tag = registry.register(small_model(built))
    registry.promote(tag, "serving benchmark")
    return {"BENTOML_HOME": os.environ["BENTOML_HOME"], "QANCHOR_FEATURE_DATA": str(built)}, tag


def server_env(served: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The server's environment (a fresh API key, the cache bound, no reloads) and the auth header."""
    from services.launch import REPO

    key = secrets.token_urlsafe(24)
    env = {**os.environ, **served, "QANCHOR_API_KEY": key, "QANCHOR_CACHE_BYTES": str(CACHE_BYTES),
           "QANCHOR_RELOAD_SECONDS": "0", "QANCHOR_FEATURE_REPO": str(REPO / "feature_repo")}  # fmt: skip
    return env, {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Load the online store if needed; the users and ten queries to ask with."""
    import pandas as pd

    from qanchor.data.contract import read_scenarios
    from services.launch import prepare_store

    data = Path(env["QANCHOR_FEATURE_DATA"])
    prepare_store(data, env["QANCHOR_FEATURE_REPO"])
    users = pd.read_parquet(data / "users.parquet", columns=["user_id"])["user_id"].tolist()
    queries = [s.query for s in read_scenarios(data / "scenarios.yaml")][:10]
    return users, queries


async def load(url: str, auth: dict, users: list[str], queries: list[str], seconds: float, clients: int, rss) -> dict:  # fmt: skip
    import httpx

    lat, codes, samples, end = [], [], [], time.monotonic() + seconds

    async def client(i: int, http) -> None:
        rng = random.Random(i)
        while time.monotonic() < end and len(lat) < MAX_REQUESTS:
            body = {"user_id": rng.choice(users[:POOL]), "query": rng.choice(queries)}
            t0 = time.perf_counter()
            r = await http.post("/embed", json=body, headers=auth)
            lat.append(time.perf_counter() - t0)
            codes.append(r.status_code)

    async def sampler(http) -> None:
        """Every second: the server's RSS and the cache's bytes (from /metrics)."""
        while time.monotonic() < end:
            text = (await http.get("/metrics")).text
            line = next(x for x in text.splitlines() if x.startswith("qanchor_prefix_cache_bytes "))
            samples.append((rss(), float(line.split()[1])))
            await asyncio.sleep(1)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(sampler(http), *(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - t0
    ms = np.asarray(lat) * 1000
    return {"clients": clients, "seconds": wall, "requests": len(lat), "rps": len(lat) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "errors": sum(c != 200 for c in codes),
            "rss_mb_series": [round(r / 2**20) for r, _ in samples],
            "cache_mb_max": max(c for _, c in samples) / 2**20}  # fmt: skip


def speedup(http, auth: dict, users: list[str], queries: list[str]) -> list[dict]:
    """Mean latency of one user x S queries, prefix computed (cold) vs cached (warm)."""
    out, fresh = [], iter(users[POOL:])
    for s in (1, 10):
        batch = [next(fresh) for _ in range(SPEEDUP_USERS)]
        times = {}
        for phase in ("cold", "warm"):
            t = []
            for u in batch:
                t0 = time.perf_counter()
                r = http.post(
                    "/embed_batch", json={"user_ids": [u], "queries": queries[:s]}, headers=auth
                )
                t.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and r.json()["prefix_cached"] == [phase == "warm"], (
                    r.text
                )
            times[phase] = float(np.mean(t))
        out.append({"S": s, "users": SPEEDUP_USERS, "cold_ms": times["cold"], "warm_ms": times["warm"],
                    "speedup": times["cold"] / times["warm"]})  # fmt: skip
    return out


def main() -> None:
    import httpx
    import psutil
    from prometheus_client.parser import text_string_to_metric_families

    from services.launch import ServerProcess

    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["auto", "promoted", "small"], default="auto")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=16)
    args = p.parse_args()
    served, tag = setup(args.model)
    env, auth = server_env(served)
    users, queries = prepare(env)
    load_before = os.getloadavg()
    with ServerProcess(free_port(), env, DATA / "serving_load.log") as server:
        server.wait_ready(timeout=600)
        tree = psutil.Process(server.proc.pid)

        def rss() -> int:
            return sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])

        with httpx.Client(base_url=server.url, timeout=120) as http:
            for u in users[:8]:  # warm-up: first calls of every code path
                http.post("/embed", json={"user_id": u, "query": queries[0]}, headers=auth)
            result = asyncio.run(
                load(server.url, auth, users, queries, args.seconds, args.clients, rss)
            )
            result["speedup"] = speedup(http, auth, users, queries)
            metrics = http.get("/metrics").text
    cache = {s.name.removeprefix("qanchor_prefix_cache_"): s.value
             for f in text_string_to_metric_families(metrics) for s in f.samples if s.name.startswith("qanchor_")}  # fmt: skip
    result.update(model=tag, cache=cache, cache_bound_mb=CACHE_BYTES / 2**20, pool_users=POOL,
                  loadavg_before=load_before, loadavg_after=os.getloadavg(), cores=os.cpu_count())  # fmt: skip
    write("serving_load", result, table(result))


def table(r: dict) -> str:
    c, rss = r["cache"], r["rss_mb_series"]
    rows = [
        f"## Serving through HTTP ({r['model']}, `bentoml serve` on 127.0.0.1, {r['cores']} shared cores, "
        f"load average {r['loadavg_before'][0]:.1f} before / {r['loadavg_after'][0]:.1f} after)\n",
        "| clients | seconds | requests | req/s | p50 (ms) | p99 (ms) | errors | server RSS first / max / last (MB) | cache max / bound (MB) | hits / misses / evictions |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['clients']} | {r['seconds']:.0f} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
        f"{r['errors']} | {rss[0]} / {max(rss)} / {rss[-1]} | {r['cache_mb_max']:.1f} / {r['cache_bound_mb']:.0f} | "
        f"{c['hits_total']:.0f} / {c['misses_total']:.0f} / {c['evictions_total']:.0f} |",
        "\n| queries per request | users | cold: prefix computed (ms) | warm: prefix cached (ms) | speedup |",
        "|---|---|---|---|---|",
    ] + [f"| {s['S']} | {s['users']} | {s['cold_ms']:.1f} | {s['warm_ms']:.1f} | {s['speedup']:.2f}x |" for s in r["speedup"]]  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    main()
