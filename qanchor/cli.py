"""The ``qanchor`` command line.

    qanchor data synth --users 2000 --seed 0 --out data/synthetic
    qanchor data build --input data/synthetic --out data/built --preset small
    qanchor drift --reference data/built --current data/built-latest --out runs/drift/today

Every subcommand parses flags, makes one library call and prints where its output is. Errors
caused by input or configuration print one clear message and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from qanchor.cli_args import add_stage as _add_stage
from qanchor.cli_chain import add_drift, add_run
from qanchor.cli_ops import add_features, add_pipeline
from qanchor.config import overrides_from_args, resolve
from qanchor.errors import QAnchorError


def _cmd_synth(args: argparse.Namespace) -> None:
    from qanchor.data.synth import SynthConfig, synth

    cfg = resolve(SynthConfig, args.preset, args.config, overrides_from_args(args, SynthConfig))
    t0 = time.perf_counter()
    out = synth(cfg, args.out)
    print(
        f"wrote synthetic dataset ({cfg.users} users, seed {cfg.seed}) to {out} in {time.perf_counter() - t0:.1f}s"
    )


def _cmd_build(args: argparse.Namespace) -> None:
    from qanchor.data.build import BuildConfig, build_dataset

    cfg = resolve(BuildConfig, args.preset, args.config, overrides_from_args(args, BuildConfig))
    t0 = time.perf_counter()
    out = build_dataset(args.input, args.out, cfg)
    print(f"built dataset in {out} in {time.perf_counter() - t0:.1f}s")
    print(f"report:   {out / 'report.md'}")
    print(f"manifest: {out / 'manifest.json'}")


def _cmd_import(args: argparse.Namespace) -> None:
    from qanchor.data.cdnow import import_cdnow
    from qanchor.data.movielens import import_movielens_100k

    t0 = time.perf_counter()
    importer = {"movielens-100k": import_movielens_100k, "cdnow": import_cdnow}[args.dataset]
    out = importer(args.out)
    print(f"wrote {args.dataset} to {out} in {time.perf_counter() - t0:.1f}s ({out / 'README.md'})")
    print(f"next: qanchor data build --input {out} --out <built dir> --preset small")


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from qanchor.model.config import PretrainConfig
    from qanchor.model.pretrain import pretrain

    cfg = resolve(
        PretrainConfig, args.preset, args.config, overrides_from_args(args, PretrainConfig)
    )
    t0 = time.perf_counter()
    out = pretrain(args.data, args.out, cfg, stop_after=args.stop_after)
    print(f"pretraining wrote {out} in {time.perf_counter() - t0:.1f}s")


def _cmd_tune(args: argparse.Namespace) -> None:
    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    cfg = resolve(TuneConfig, args.preset, args.config, overrides_from_args(args, TuneConfig))
    names = args.scenarios.split(",") if args.scenarios else None
    t0 = time.perf_counter()
    adapters = tune_model(args.model, args.data, cfg, names)
    for a in adapters:
        print(
            f"{a.name}: {a.meta.get('bytes', 0)} bytes, loss {a.meta['final_loss']:.3f}, shared with {a.meta['shared_with']}"
        )
    print(
        f"tuned {len(adapters)} scenarios into {args.model}/scenarios in {time.perf_counter() - t0:.1f}s"
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from qanchor.eval.evaluate import EvalConfig, evaluate

    cfg = resolve(EvalConfig, args.preset, args.config, overrides_from_args(args, EvalConfig))
    out = evaluate(args.model, args.data, args.out, cfg)
    print(f"metrics: {out / 'metrics.json'}")
    print(f"report:  {out / 'report.md'}")


def _cmd_embed(args: argparse.Namespace) -> None:
    from qanchor.infer.engine import Embedder
    from qanchor.infer.refresh import refresh
    from qanchor.model.data import BuiltData

    data = BuiltData.load(args.data)
    emb = Embedder.from_dir(args.model, cache_bytes=args.cache_mb << 20)
    emb.load_users(data.snapshots, data.profiles)
    names = args.scenarios.split(",") if args.scenarios else sorted(emb.adapters)
    summary = refresh(emb, args.out, names, args.shard_users, args.incremental)
    print(f"embedded {summary['embedded']} of {summary['users']} users x {len(names)} scenarios into {args.out} "
          f"in {summary['seconds']}s")  # fmt: skip


def _cmd_explain(args: argparse.Namespace) -> None:
    from qanchor.eval.evaluate import random_parts
    from qanchor.infer.engine import Embedder
    from qanchor.infer.explain import explain
    from qanchor.model.artifact import read_config
    from qanchor.model.data import BuiltData

    if random := random_parts(read_config(args.model)["model"]):
        # A `tiny` test model decodes random tokens: say so before printing them.
        print(f"warning: {args.model} is a random test model ({', '.join(random)}): "
              "the text below is noise, not a description", file=sys.stderr)  # fmt: skip
    data = BuiltData.load(args.data)
    emb = Embedder.from_dir(args.model)
    emb.load_users(data.snapshots[data.snapshots["user_id"] == args.user], data.profiles)
    if not emb.knows(args.user):
        raise QAnchorError(f"unknown user {args.user!r} in {args.data}")
    query = emb.suffix(args.query).query
    print(explain(emb.engine, emb.users, args.user, query, args.max_new_tokens))


MODEL = {"--model": "model directory (with its scenario adapters)"}
BUILT = {"--data": "built dataset directory (qanchor data build)"}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="qanchor", description="Scenario-adaptive user embeddings."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log progress at INFO level and show third-party warnings and bars",
    )
    top = parser.add_subparsers(dest="command", required=True)
    _add_data(top)
    _add_training(top)
    _add_inference(top)
    add_run(top)
    add_features(top)
    add_drift(top)
    add_pipeline(top)
    return parser


def _add_data(top: argparse._SubParsersAction) -> None:
    """``qanchor data synth|build|import``."""
    from qanchor.data.build_config import BuildConfig
    from qanchor.data.synth import SynthConfig

    data = top.add_parser("data", help="synthesise, import and build datasets")
    data = data.add_subparsers(dest="data_command", required=True)

    _add_stage(
        data,
        "synth",
        "write a synthetic dataset in the input contract",
        _cmd_synth,
        SynthConfig,
        {"--out": "output dataset directory"},
    )
    _add_stage(
        data,
        "build",
        "validate a dataset and build splits, snapshots and UserU pairs",
        _cmd_build,
        BuildConfig,
        {
            "--input": "dataset directory in the input contract",
            "--out": "output directory of the built dataset",
        },
    )
    p = _add_stage(
        data,
        "import",
        "import a public dataset into the input contract (fetched at run time, never committed)",
        _cmd_import,
        required={"--out": "output dataset directory"},
    )
    p.add_argument(
        "dataset",
        choices=["movielens-100k", "cdnow"],
        help="which public dataset: movielens-100k (ratings: 782 users with long histories), "
        "cdnow (purchases: 23,570 customers with a few orders each)",
    )


def _add_training(top: argparse._SubParsersAction) -> None:
    """``qanchor pretrain|tune|evaluate``: one configured stage each."""
    from qanchor.eval.config import EvalConfig
    from qanchor.model.config import PretrainConfig
    from qanchor.tune.config import TuneConfig

    p = _add_stage(
        top,
        "pretrain",
        "pretrain the Q-Anchor model on a built dataset",
        _cmd_pretrain,
        PretrainConfig,
        {**BUILT, "--out": "model directory to write"},
    )
    p.add_argument(
        "--stop-after", type=int, default=None, help="stop with a checkpoint after N steps"
    )
    p = _add_stage(
        top,
        "tune",
        "soft-prompt tuning of scenarios on a pretrained model",
        _cmd_tune,
        TuneConfig,
        {**MODEL, **BUILT},
    )
    p.add_argument(
        "--scenarios", default=None, help="comma-separated scenario names (default: all)"
    )
    _add_stage(
        top,
        "evaluate",
        "probe tuned/base embeddings and baselines; write metrics.json",
        _cmd_evaluate,
        EvalConfig,
        {**MODEL, **BUILT, "--out": "evaluation output directory"},
    )


def _add_inference(top: argparse._SubParsersAction) -> None:
    """``qanchor embed|explain`` over a tuned model."""
    p = _add_stage(
        top,
        "embed",
        "embed all users x scenarios into parquet shards",
        _cmd_embed,
        required={**MODEL, **BUILT, "--out": "embeddings directory"},
    )
    p.add_argument(
        "--scenarios",
        default=None,
        help="comma-separated scenarios or queries (default: tuned ones)",
    )
    p.add_argument(
        "--incremental", action="store_true", help="re-encode only users whose inputs changed"
    )
    p.add_argument("--shard-users", type=int, default=1000, help="users per parquet shard")
    p.add_argument("--cache-mb", type=int, default=1024, help="prefix KV cache budget (MB)")

    p = _add_stage(
        top,
        "explain",
        "describe a user for a query in words (next-token head)",
        _cmd_explain,
        required={**MODEL, **BUILT, "--user": "user id", "--query": "a scenario name or free text"},
    )
    p.add_argument("--max-new-tokens", type=int, default=48, help="longest description in tokens")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qanchor`` console command."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        from qanchor.noise import quiet_third_party

        quiet_third_party()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except QAnchorError as exc:
        print(f"qanchor: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
