"""Multi-scenario embedding: users/s with and without the prefix KV cache, against the FLOP bound.

    python -m benchmarks.multi_scenario

For S scenarios per user, the uncached path runs prefix + suffix S times; the cached path runs
the prefix once and S suffixes. With prefix length L and suffix length q (tokens), the best
possible speedup is S(L+q) / (L+Sq). The model is the `small` architecture (SmolLM2 cut to 6
layers); its weights do not affect speed, so an untrained model directory is used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.common import DATA, bench_dataset, write

USERS = 64
S_VALUES = (1, 5, 10, 20)
EXTRA_QUERIES = [
    "Will this user open a savings account?", "Is this user likely to buy a new phone?",
    "Will this user order food delivery this week?", "Does this user commute by public transport?",
    "Will this user apply for a credit card?", "Is this user planning a wedding?",
    "Will this user renew their gym membership?", "Is this user a frequent online shopper?",
]  # fmt: skip


def small_model(built: Path) -> Path:
    from qanchor.config import resolve
    from qanchor.model.config import PretrainConfig
    from qanchor.model.pretrain import pretrain

    out = DATA / "model-small-untrained"
    if not (out / "config.json").is_file():
        pretrain(
            built, out, resolve(PretrainConfig, "small", overrides={"steps": 0, "eval_users": 0})
        )
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    import pandas as pd

    from qanchor.data.contract import read_scenarios
    from qanchor.infer.engine import Embedder, Suffix

    built = bench_dataset()
    emb = Embedder.from_dir(small_model(built), cache_bytes=4 << 30)
    snaps = pd.read_parquet(built / "snapshots.parquet").head(USERS)
    emb.load_users(snaps, pd.read_parquet(built / "profiles.parquet"))
    queries = [s.query for s in read_scenarios(built / "scenarios.yaml")] + EXTRA_QUERIES
    rows = list(range(USERS))
    L = sum(e.length for e in emb.prefixes(rows, use_cache=False)) / USERS
    emb.embed_rows(rows[:4], [Suffix(queries[0])], use_cache=False)  # warm-up
    results = []
    for S in S_VALUES:
        sfx = [Suffix(q) for q in queries[:S]]
        q = sum(emb.suffix_embeds(x)[0].shape[0] for x in sfx) / S
        emb.cache.invalidate(lambda key: True)  # cold cache: prefixes are computed in the timing
        t_cached = timed(lambda sfx=sfx: emb.embed_rows(rows, sfx, use_cache=True))
        t_uncached = timed(lambda sfx=sfx: emb.embed_rows_uncached(rows, sfx))
        bound = S * (L + q) / (L + S * q)
        speedup = t_uncached / t_cached
        results.append({"S": S, "prefix_tokens": L, "suffix_tokens": q, "users_per_s_cached": USERS / t_cached,
                        "users_per_s_uncached": USERS / t_uncached, "speedup": speedup, "flop_bound": bound,
                        "fraction_of_bound": speedup / bound})  # fmt: skip
        print(json.dumps(results[-1]), flush=True)
    table = "\n".join(
        ["| S | L (prefix) | q (suffix) | users/s cached | users/s uncached | speedup | FLOP bound | % of bound |",
         "|---|---|---|---|---|---|---|---|"]
        + [f"| {r['S']} | {r['prefix_tokens']:.0f} | {r['suffix_tokens']:.0f} | {r['users_per_s_cached']:.1f} | "
           f"{r['users_per_s_uncached']:.1f} | {r['speedup']:.2f}x | {r['flop_bound']:.2f}x | {100 * r['fraction_of_bound']:.0f}% |"
           for r in results]
    )  # fmt: skip
    write(
        "multi_scenario",
        {"users": USERS, "results": results},
        "## Multi-scenario embedding, small preset, CPU\n\n" + table,
    )


if __name__ == "__main__":
    main()
