"""The whole chain at growing user counts: per-stage seconds and peak memory (issue: scale).

    python -m benchmarks chain                                   # 2k, 20k, 100k users, fp32
    python -m benchmarks.chain --users 2000 20000 --bf16 off
    python -m benchmarks.chain --users 100000 --steps 50         # fewer pretraining steps
    python -m benchmarks.chain --users 100000 --sample-embed 20  # embed 1/20 of the users

Each size runs ``qanchor run --preset small`` (every stage, through gate, register and embed)
in its own process on synthetic users (``qanchor data synth``, timed apart), with its own model
store, so a size's peak memory is its own. ``run.json`` gives each stage's seconds and peak
resident memory (process + children); the table adds seconds per 1,000 users and the ratio of
that to the smallest size's (1.0 = linear in users). The embed stage copies the vectors of users
evaluation already embedded, so its rate is per user it embedded; where it embedded none (every
user was in evaluation's sample), the finished run's users are embedded again afresh, timed. Writes benchmarks/results/chain.{md,json}
(a size measured earlier is kept unless measured again).

``--sample-embed K`` (sizes >= ``--steps-from``): the run stops after register, and the embed
stage is measured on a sample, as ``qanchor run`` runs it (:func:`embed_sample`). Its seconds,
users and peak memory are reported beside the row, not as the stage's. At 100,000 users the whole stage would
take ~1.9 h on 2 fp32 cores (measured on 2 of 40 shards: 70 s per 1,000 users for the stage).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import DATA, RESULTS, cpu_model, write

SIZES = [2000, 20000, 100000]
# Stages whose time should grow linearly with users (pretraining is a fixed number of steps).
PER_USER = ("build", "tune", "evaluate", "embed")


def dataset(users: int, seed: int = 0) -> tuple[Path, float]:
    """Synthetic raw data of ``users`` users (made once) and the seconds it took (0: cached)."""
    raw = DATA / f"chain-raw-{users}-{seed}"
    if (raw / "events.parquet").is_file():
        return raw, 0.0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qanchor", "data", "synth", "--users", str(users),
                    "--seed", str(seed), "--out", str(raw)], check=True)  # fmt: skip
    return raw, round(time.perf_counter() - t0, 1)


def run_one(users: int, bf16: str, steps: int | None, out: Path, sample: int = 0) -> dict:
    """One size through the whole chain in a child process; its run.json plus the setup.
    ``sample`` > 0: through register, then one of ``sample`` embed shards (:func:`embed_sample`)."""
    raw, synth_s = dataset(users)
    over = {"pretrain": {"steps": steps}} if steps else {}
    through = "register" if sample else "embed"
    code = (
        "import json, sys; from qanchor.pipeline import run_all; "
        f"run_all({str(raw)!r}, {str(out)!r}, 'small', seed=0, bf16={bf16!r}, "
        f"model_name='qanchor-bench', overrides=json.loads(sys.argv[1]), through={through!r})"
        + (
            f"\nfrom benchmarks.chain import embed_sample; embed_sample({str(out)!r}, {sample})"
            if sample
            else ""
        )
    )
    store = out.parent / f"bentoml-{users}"
    for old in (out, Path(f"{out}.ckpt"), store):  # a fresh run: no checkpoint to resume, no
        shutil.rmtree(old, ignore_errors=True)  # promoted model to gate against
    env = {**os.environ, "BENTOML_HOME": str(store)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, json.dumps(over)], check=True, env=env)
    wall = round(time.perf_counter() - t0, 1)
    run = json.loads((out / "run.json").read_text())
    if sample:
        embedded, embed_s = 0, 0.0
        run["embed_sample"] = json.loads((out / "embed_sample.json").read_text())
    else:
        embedded, embed_s = fresh_embedding(out, run["seconds"].get("embed", 0.0), env)
    layers = json.loads((out / "model" / "config.json").read_text())["model"]["backbone_layers"]
    return {"users": users, "bf16": bf16, "pretrain_steps": steps or "preset (200)",
            "commit": commit(), "backbone_layers": layers,
            "synth_s": synth_s, "wall_s": wall,
            "seconds": run["seconds"], "total_s": run["total_seconds"],
            "peak_rss_mb": run["peak_rss_mb"], "gate": (run.get("gate") or {}).get("reason"),
            "embedded_users": embedded, "embed_fresh_s": embed_s,
            "embed_sample": run.get("embed_sample"),
            "evaluate_cached": cached_features(out)}  # fmt: skip


def embed_sample(out: str | Path, shards: int) -> None:
    """The embed stage on a sample, as ``qanchor run`` runs it: called in the process that called
    ``run_all`` through register (the stages ran in processes of their own), one one-thread share
    per core, each embedding one of ``shards`` shards afresh. Its users, seconds and peak
    resident memory (this process and the workers it starts) go to ``<out>/embed_sample.json``."""
    from qanchor.orchestrate.embed_stage import cores, embed_all
    from qanchor.orchestrate.peak import PeakMemory

    out, n = Path(out), cores()
    t0 = time.perf_counter()
    with PeakMemory() as peak:
        got = embed_all(out, reuse=False, num_shards=shards, only=list(range(n)))
    facts = {"users": sum(r["users"] for r in got), "seconds": round(time.perf_counter() - t0, 1),
             "peak_mb": peak.mb, "shards": shards, "workers": n}  # fmt: skip
    (out / "embed_sample.json").write_text(json.dumps(facts) + "\n")


def cached_features(out: Path) -> str:
    """The baseline features evaluation read from the feature cache ("" if it computed all)."""
    details = json.loads((out / "eval" / "eval_details.json").read_text())
    return details.get("timings", {}).get("baseline_features_cached", "")


def fresh_embedding(out: Path, embed_s: float, env: dict) -> tuple[int, float]:
    """(users the embed stage embedded afresh, its seconds); if none, a timed fresh re-embed."""
    shards = [json.loads(p.read_text()) for p in (out / "stages").glob("embed-*.json")]
    embedded = sum(r["users"] - r["reused"] for r in shards)
    if embedded:
        return embedded, embed_s
    code = "import sys; from qanchor.orchestrate.embed_stage import embed_all; "
    code += "embed_all(sys.argv[1], reuse=False)"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env)
    return sum(r["users"] for r in shards), round(time.perf_counter() - t0, 1)


def commit() -> str:
    """The checked-out commit (short hash; "unknown" outside a git checkout)."""
    got = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return got.stdout.strip() or "unknown"


def per_1000(row: dict, stage: str) -> float | None:
    """Seconds per 1,000 users of ``stage``; embed per user embedded afresh (None: unmeasured)."""
    if stage != "embed":
        return row["seconds"].get(stage, 0) / row["users"] * 1000
    if not row.get("embedded_users"):
        return None  # a row measured before the fresh re-embed existed
    return row["embed_fresh_s"] / row["embedded_users"] * 1000


def table(rows: list[dict]) -> str:
    stages = list(rows[0]["seconds"])
    base = rows[0]
    lines = [
        "## The whole chain at scale (`python -m benchmarks chain`)",
        "",
        f"`qanchor run --preset small` on synthetic users, CPU `{cpu_model()}`, "
        f"{os.cpu_count()} cores, precision: bf16 `{base['bf16']}` (fp32 when off). "
        "Seconds per stage, then peak resident memory per stage (process + children).",
        "",
        "| users | commit (backbone layers) | pretrain steps | "
        + " | ".join(stages)
        + " | total s | peak MB (max stage) |",
        "|---" * (len(stages) + 5) + "|",
    ]
    for r in rows:
        secs = " | ".join(_secs(r, s) for s in stages)
        peak = max(r["peak_rss_mb"].values())
        worst = max(r["peak_rss_mb"], key=r["peak_rss_mb"].get)
        made = f"{r.get('commit', '?')} ({r.get('backbone_layers', '?')})"
        lines.append(f"| {r['users']:,} | {made} | {r['pretrain_steps']} | {secs} | {r['total_s']:.0f} | "
                     f"{peak:,.0f} ({worst}) |")  # fmt: skip
    lines += ["", "Seconds per 1,000 users (and ratio to the first row; 1.0 = linear):", "",
              "| users | " + " | ".join(PER_USER) + " |", "|---" * (len(PER_USER) + 1) + "|"]  # fmt: skip
    for r in rows:
        cells = []
        for s in PER_USER:
            per, ref = per_1000(r, s), per_1000(base, s)
            if per is None:
                cells.append("–")
            else:
                cells.append(f"{per:.1f} ({per / ref:.2f}x)" if ref else f"{per:.1f}")
        lines.append(f"| {r['users']:,} | " + " | ".join(cells) + " |")
    lines += ["", "Embed: seconds per 1,000 users embedded afresh (the stage, or a timed re-embed "
              "where the stage copied every user from evaluation). Ratios compare rows of "
              "different commits or backbone depths only as far as those allow."]  # fmt: skip
    for r in rows:
        if r.get("evaluate_cached"):
            lines += ["", f"\\* {r['users']:,} users: evaluate read its baseline features "
                      f"({r['evaluate_cached']}) from the feature cache of an earlier run on the "
                      "same bytes; computed afresh they cost more (`llm_untrained` most)."]  # fmt: skip
    for r in rows:
        if r.get("embed_sample"):
            e = r["embed_sample"]
            lines += ["", f"{r['users']:,} users ran through register; " + _sampled(e)]
    lines += ["", "Peak memory per stage (MB):", "",
              "| users | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]  # fmt: skip
    for r in rows:
        cells = " | ".join(f"{r['peak_rss_mb'][s]:,.0f}" if s in r["peak_rss_mb"] else "–"
                           for s in stages)  # fmt: skip
        lines.append(f"| {r['users']:,} | {cells} |")
    return "\n".join(lines)


def _secs(row: dict, stage: str) -> str:
    """A stage's seconds in the table; evaluate starred where it read cached features."""
    if stage not in row["seconds"]:
        return "–"
    star = "\\*" if stage == "evaluate" and row.get("evaluate_cached") else ""
    return f"{row['seconds'][stage]:.0f}{star}"


def _sampled(e: dict) -> str:
    """The sentence on a row's embed sample."""
    rate = f"{e['seconds'] / e['users'] * 1000:.1f} s per 1,000 users"
    return (
        f"the embed stage was measured on {e['workers']} of {e['shards']} shards, afresh, "
        f"as `qanchor run` runs them (one one-thread share per core, from the process that "
        f"called the chain, whose earlier stages ran in processes of their own): "
        f"{e['users']:,} users in {e['seconds']:,.0f} s ({rate}), "
        f"peak {e['peak_mb']:,.0f} MB, that process and the workers it started."
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, nargs="+", default=SIZES)
    p.add_argument("--bf16", default="off", choices=("auto", "on", "off"))
    p.add_argument("--steps", type=int, default=None,
                   help="pretraining steps of sizes >= --steps-from (default: the preset's)")  # fmt: skip
    p.add_argument("--steps-from", type=int, default=100000)
    p.add_argument(
        "--sample-embed",
        type=int,
        default=0,
        metavar="K",
        help="sizes >= --steps-from: stop at register, embed 1 of K shards per core",
    )
    p.add_argument("--out", type=Path, default=DATA / "chain-runs")
    args = p.parse_args(argv)
    previous = RESULTS / "chain.json"
    kept = json.loads(previous.read_text())["runs"] if previous.is_file() else []
    rows = {r["users"]: r for r in kept if r["bf16"] == args.bf16}
    for n in args.users:
        large = n >= args.steps_from
        steps = args.steps if args.steps and large else None
        sample = args.sample_embed if large else 0
        rows[n] = run_one(n, args.bf16, steps, args.out / f"users-{n}", sample)
        ordered = [rows[k] for k in sorted(rows)]
        write("chain", {"runs": ordered}, table(ordered))


if __name__ == "__main__":
    main()
