"""The chain and monitoring subcommands of ``qanchor``: one run of the whole chain, and drift.

    qanchor run --data data/synthetic --out runs/small --preset small [--through evaluate]
    qanchor drift --reference served --current data/built-new --out runs/drift --model served

Thin wrappers of :func:`qanchor.pipeline.run_all` and :func:`qanchor.monitoring.job.run_drift`,
registered by :func:`qanchor.cli.build_parser`; heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse

from qanchor.cli_args import add_stage as _add_stage
from qanchor.config import PRESETS, overrides_from_args, resolve
from qanchor.orchestrate import chain


def add_run(top: argparse._SubParsersAction) -> None:
    """``qanchor run``: every stage of the chain on this machine, without a server."""
    p = _add_stage(
        top,
        "run",
        "the whole chain, no server: build, materialize, pretrain, tune, evaluate, gate, "
        "register, embed",
        _cmd_run,
        required={
            "--data": "dataset directory in the input contract",
            "--out": "output directory of the run",
        },
    )
    p.add_argument("--preset", choices=PRESETS, default="small", help="preset of every stage")
    p.add_argument(
        "--feature-repo",
        default=None,
        help="Feast repo (e.g. feature_repo): stages read user snapshots through it",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of every stage (build split salt, initialisation, sampling, probes); "
        "default: each stage's own",
    )
    p.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default=None,
        help="bf16 autocast of pretrain, tune and evaluate (off: fp32, as on a CPU without "
        "native bf16); default: each stage's preset",
    )
    p.add_argument(
        "--through",
        choices=chain.NAMES,
        default=chain.NAMES[-1],
        help="last stage to run (evaluate: an experiment that leaves the model store alone)",
    )
    p.add_argument("--model-name", default="qanchor", help="model store name (gate and register)")
    p.add_argument(
        "--tolerance", type=float, default=0.01, help="the gate's allowed drop in mean AUC"
    )


def add_drift(top: argparse._SubParsersAction) -> None:
    """``qanchor drift``: input, embedding and score drift; an alert e-mail on drift."""
    from qanchor.monitoring.config import DriftConfig

    p = _add_stage(
        top,
        "drift",
        "input, embedding and score drift of a current build vs the reference; alert e-mail",
        _cmd_drift,
        DriftConfig,
        {
            "--reference": "built dataset of the training snapshot window ('served': the build "
            "the promoted model was trained on)",
            "--current": "built dataset of the latest snapshots",
            "--out": "output directory of this run (reports, summary.json)",
        },
    )
    p.add_argument("--model", default=None,
                   help="model directory ('served': the promoted one): also embedding and score drift")  # fmt: skip
    p.add_argument("--workspace", default=None, help="local Evidently workspace to add the runs to")
    p.add_argument(
        "--smtp",
        default="none",
        help="e-mail on drift: none, env (QANCHOR_SMTP_* variables) or HOST:PORT "
        "(sender and recipients still from QANCHOR_SMTP_FROM/TO)",
    )
    p.add_argument(
        "--state",
        default=None,
        help="alert de-duplication state file (default: alert_state.json beside --out)",
    )


def _cmd_run(args: argparse.Namespace) -> None:
    from qanchor.pipeline import run_all

    summary = run_all(args.data, args.out, args.preset, args.feature_repo, seed=args.seed,
                      through=args.through, model_name=args.model_name, tolerance=args.tolerance,
                      bf16=args.bf16)  # fmt: skip
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items())
    print(f"finished in {summary['total_seconds']:.0f} s ({stages})")
    if summary["gate"] is not None:
        print(f"gate:    {summary['gate']['reason']}")
    if (summary["register"] or {}).get("registered"):
        print(f"model:   {summary['register']['tag']} (promoted)")
    print(f"metrics: {summary['paths']['eval']}/metrics.json")
    print(f"report:  {summary['paths']['eval']}/report.md")


def _cmd_drift(args: argparse.Namespace) -> None:
    from qanchor.monitoring.config import DriftConfig
    from qanchor.monitoring.job import resolve_served, run_drift

    cfg = resolve(DriftConfig, args.preset, args.config, overrides_from_args(args, DriftConfig))
    reference, model = resolve_served(args.reference, args.model)
    summary = run_drift(reference, args.current, args.out, cfg, model, args.workspace or None)
    print(f"drift: {', '.join(summary['drifted_items']) or 'none'}")
    print(f"report:  {summary['reports']['index']}")
    print(f"summary: {args.out}/summary.json")
    if args.smtp != "none":
        from pathlib import Path

        from qanchor.monitoring.alert import alert_on_drift, smtp_from_flag

        state = args.state or Path(args.out).parent / "alert_state.json"
        result = alert_on_drift(summary, smtp_from_flag(args.smtp), state, cfg.cooldown_hours)
        print(f"e-mail:  {'sent' if result['sent'] else 'not sent'} ({result['reason']})")
