"""Online feature reads: latency of 1-user and 100-user reads, SQLite (embedded) and Redis.

    python -m benchmarks.feature_reads

Reads the serving feature service (event history lists + profile) of the 2,000-user benchmark
dataset. Two timings per read: Feast's ``get_online_features(...).to_dict()`` alone, and
``qanchor.features.online_snapshots`` (the same read turned into the snapshot/profile frames
the inference engine loads). Redis is a local redis-server started here on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, bench_dataset, write

REPO = Path(__file__).resolve().parents[1] / "feature_repo"
REPEATS = {1: 500, 100: 200}


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free local port; yields its connection string."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--daemonize", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        import redis

        for _ in range(100):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def latencies(fn, users: list[str], n: int, repeats: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    for _ in range(5):  # warm-up: registry cache, connections
        fn(list(rng.choice(users, n, replace=False)))
    out = []
    for _ in range(repeats):
        ids = list(rng.choice(users, n, replace=False))
        t0 = time.perf_counter()
        fn(ids)
        out.append((time.perf_counter() - t0) * 1000)
    return np.asarray(out)


def measure(backend: str, cfg) -> list[dict]:
    import pandas as pd

    from qanchor.features import online_snapshots, store, sync

    sync(cfg, full=True)  # the Redis server is new: load everything, not only what is new
    users = pd.read_parquet(Path(cfg.data) / "users.parquet")["user_id"].tolist()
    served = online_snapshots(cfg, users[:100]).snapshots["event_text"].map(len).sum()
    assert served > 0, f"{backend}: the online store serves no events"
    fs = store(cfg)
    svc = fs.get_feature_service("qanchor_serving")

    def raw(ids: list[str]) -> None:
        fs.get_online_features(features=svc, entity_rows=[{"user_id": u} for u in ids]).to_dict()

    rows = []
    for n, repeats in REPEATS.items():
        for what, fn in (("get_online_features", raw),
                         ("online_snapshots", lambda ids: online_snapshots(cfg, ids))):  # fmt: skip
            ms = latencies(fn, users, n, repeats)
            rows.append({"backend": backend, "users": n, "read": what, "repeats": repeats,
                         "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                         "mean_ms": float(ms.mean())})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    from qanchor.features import FeatureStoreConfig

    built = bench_dataset()
    base = {"data": str(built), "repo": str(REPO)}
    results = measure("sqlite", FeatureStoreConfig(**base, work_dir=str(DATA / "features-sqlite")))
    with redis_server() as url:
        cfg = FeatureStoreConfig(**base, work_dir=str(DATA / "features-redis"),
                                 online_store="redis", redis_url=url)  # fmt: skip
        results += measure("redis", cfg)
    table = "\n".join(
        ["| online store | users per read | read | p50 (ms) | p99 (ms) | mean (ms) | reads |",
         "|---|---|---|---|---|---|---|"]
        + [f"| {r['backend']} | {r['users']} | `{r['read']}` | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
           f"{r['mean_ms']:.2f} | {r['repeats']} |" for r in results]
    )  # fmt: skip
    write(
        "feature_reads",
        {"dataset_users": 2000, "feature_service": "qanchor_serving", "results": results},
        "## Online feature reads (serving feature service), 2,000-user dataset, CPU\n\n" + table,
    )


if __name__ == "__main__":
    main()
