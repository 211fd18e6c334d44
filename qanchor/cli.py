"""The ``qanchor`` command line.

    qanchor data synth --users 2000 --seed 0 --out data/synthetic
    qanchor data build --input data/synthetic --out data/built --preset small

Every subcommand parses flags, makes one library call and prints where its output is. Errors
caused by input or configuration print one clear message and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from qanchor.config import PRESETS, add_config_args, overrides_from_args, resolve
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


def _add_stage(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    func: Callable,
    config_cls: type | None,  # noqa: A002
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(func=func)
    if config_cls is not None:
        p.add_argument(
            "--preset", choices=PRESETS, default=None, help="named preset of the stage config"
        )
        p.add_argument("--config", default=None, help="YAML file of config overrides")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for docs and tests)."""
    from qanchor.data.build import BuildConfig
    from qanchor.data.synth import SynthConfig
    from qanchor.model.config import PretrainConfig
    from qanchor.tune.config import TuneConfig

    parser = argparse.ArgumentParser(
        prog="qanchor", description="Scenario-adaptive user embeddings."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    top = parser.add_subparsers(dest="command", required=True)
    data = top.add_parser("data", help="synthesise and build datasets").add_subparsers(
        dest="data_command", required=True
    )

    p = _add_stage(
        data, "synth", "write a synthetic dataset in the input contract", _cmd_synth, SynthConfig
    )
    p.add_argument("--out", required=True, help="output dataset directory")
    add_config_args(p, SynthConfig)

    p = _add_stage(
        data,
        "build",
        "validate a dataset and build splits, snapshots and UserU pairs",
        _cmd_build,
        BuildConfig,
    )
    p.add_argument("--input", required=True, help="dataset directory in the input contract")
    p.add_argument("--out", required=True, help="output directory of the built dataset")
    add_config_args(p, BuildConfig)

    p = _add_stage(
        top,
        "pretrain",
        "pretrain the Q-Anchor model on a built dataset",
        _cmd_pretrain,
        PretrainConfig,
    )
    p.add_argument("--data", required=True, help="built dataset directory (qanchor data build)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument(
        "--stop-after", type=int, default=None, help="stop with a checkpoint after N steps"
    )
    add_config_args(p, PretrainConfig)

    p = _add_stage(
        top, "tune", "soft-prompt tuning of scenarios on a pretrained model", _cmd_tune, TuneConfig
    )
    p.add_argument("--model", required=True, help="pretrained model directory")
    p.add_argument("--data", required=True, help="built dataset directory with labels")
    p.add_argument(
        "--scenarios", default=None, help="comma-separated scenario names (default: all)"
    )
    add_config_args(p, TuneConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qanchor`` console command."""
    args = build_parser().parse_args(argv)
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
