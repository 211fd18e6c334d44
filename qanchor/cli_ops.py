"""The operations subcommands of ``qanchor``: the feature store and the Kubeflow pipeline.

    qanchor features apply|materialize|push --data data/built ...
    qanchor pipeline compile|submit|local ...

Thin wrappers of :mod:`qanchor.features` and :mod:`qanchor.orchestrate`, registered by
:func:`qanchor.cli.build_parser`; heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse

from qanchor.config import PRESETS, overrides_from_args, resolve
from qanchor.errors import QAnchorError

COMPONENTS_ENV = "QANCHOR_COMPONENTS"  # the package of the Kubeflow components (a shell)


def pipeline_runner():
    """The Kubeflow shell's runner, ``<QANCHOR_COMPONENTS or components>.runner``.

    The library never imports its shells; `qanchor pipeline` finds the components by module
    name (installed with the platform, or importable from the working directory).
    """
    import importlib
    import os
    import sys

    from qanchor.orchestrate.settings import ComponentSettings

    package = ComponentSettings().package
    if os.getcwd() not in sys.path:  # a console script does not see the working directory
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(f"{package}.runner")
    except ModuleNotFoundError as exc:
        raise QAnchorError(
            f"`qanchor pipeline` needs the Kubeflow components ({package}.runner): run it in the "
            f"repository, or set {COMPONENTS_ENV} to the package that holds them ({exc})"
        ) from exc


def _cmd_pipeline(args: argparse.Namespace) -> None:
    from qanchor.orchestrate.outcome import summarize

    kfp_runner = pipeline_runner()

    if args.pipeline_command == "compile":
        print(f"wrote {kfp_runner.compile_pipeline(args.out)}")
        return
    arguments = {"dataset": args.dataset, "run": args.run, "preset": args.preset,
                 "scenarios": [s for s in (args.scenarios or "").split(",") if s],
                 "tolerance": args.tolerance, "model_name": args.model_name,
                 "feature_repo": args.feature_repo}  # fmt: skip
    if args.pipeline_command == "local":
        kfp_runner.run_pipeline_local(arguments, f"{args.run}/kfp-local")
        summary = summarize(args.run)
        print(f"gate: {(summary['gate'] or {}).get('reason')}")
        print(f"metrics: {summary['metrics']}")
        print(f"report:  {summary['report']}")
        return
    host = args.host or kfp_runner.kfp_host()
    if not host:
        raise QAnchorError("no Kubeflow Pipelines endpoint: set KFP_HOST or pass --host")
    run_id = kfp_runner.submit_pipeline(arguments, host, wait=args.wait, package=args.package)
    print(f"submitted Kubeflow run {run_id} to {host}")


def add_pipeline(top: argparse._SubParsersAction) -> None:
    """``qanchor pipeline compile|submit|local``: the Kubeflow pipeline of components/."""
    p = top.add_parser("pipeline", help="compile, submit or locally run the Kubeflow pipeline")
    sub = p.add_subparsers(dest="pipeline_command", required=True)
    c = sub.add_parser("compile", help="write the pipeline YAML")
    c.add_argument("--out", default="components/qanchor_pipeline.yaml", help="YAML path")
    c.set_defaults(func=_cmd_pipeline)
    for name, text in (("submit", "submit to the Kubeflow endpoint (KFP_HOST or --host)"),
                       ("local", "run with KFP's local runner (no Docker)")):  # fmt: skip
        q = sub.add_parser(name, help=text, description=text)
        q.set_defaults(func=_cmd_pipeline)
        q.add_argument("--dataset", required=True, help="dataset directory in the input contract")
        q.add_argument("--run", required=True, help="run directory (shared by every step)")
        q.add_argument("--preset", choices=PRESETS, default="small", help="preset of every stage")
        q.add_argument("--scenarios", default="", help="comma-separated scenarios (default: all)")
        q.add_argument("--tolerance", type=float, default=0.01, help="quality gate tolerance (AUC)")
        q.add_argument("--model-name", default="qanchor", help="BentoML model store name")
        q.add_argument("--feature-repo", default="", help="Feast repo to read snapshots through")
        if name == "submit":
            q.add_argument("--host", default=None, help="endpoint (default: $KFP_HOST)")
            q.add_argument("--wait", action="store_true", help="wait for the run to finish")
            q.add_argument("--package", default=None,
                           help="compiled pipeline YAML to submit as is (make compile: "
                                "components/qanchor_pipeline.yaml); default: compile now")  # fmt: skip


def _cmd_features(args: argparse.Namespace) -> None:
    import pandas as pd

    from qanchor import features as F

    overrides = overrides_from_args(args, F.FeatureStoreConfig)
    cfg = resolve(F.FeatureStoreConfig, None, args.config, overrides)
    if args.features_command == "apply":
        print(f"applied {len(F.apply(cfg))} objects; registry in {cfg.state_dir}")
    elif args.features_command == "materialize":
        end = F.materialize(cfg, args.end, args.full)
        print(f"materialised up to {end.isoformat()} ({cfg.online_store})")
    else:
        result = F.push_events(cfg, pd.read_parquet(args.events), create=args.create)
        print(
            f"pushed {result.events} events; {len(result.stale)} users stale: {sorted(result.stale)[:10]}"
        )


def add_features(top: argparse._SubParsersAction) -> None:
    """``qanchor features apply|materialize|push``: thin wrappers of :mod:`qanchor.features`."""
    from qanchor.cli_args import add_stage as _add_stage
    from qanchor.features.config import FeatureStoreConfig

    sub = top.add_parser("features", help="the Feast feature store").add_subparsers(
        dest="features_command", required=True
    )
    data = {"--data": "built dataset directory the feature sources read"}
    _add_stage(
        sub,
        "apply",
        "register feature_repo's views over a built dataset",
        _cmd_features,
        FeatureStoreConfig,
        data,
    )
    p = _add_stage(
        sub,
        "materialize",
        "load the latest features into the online store",
        _cmd_features,
        FeatureStoreConfig,
        data,
    )
    p.add_argument("--end", default=None, help="materialise up to this time (default: now)")
    p.add_argument(
        "--full",
        action="store_true",
        help="load all rows again, not only those since the last run (a wiped online store)",
    )
    p = _add_stage(sub, "push", "append new events to users' online event history", _cmd_features,
                   FeatureStoreConfig, {**data, "--events": "parquet of new events (events.parquet columns)"})  # fmt: skip
    p.add_argument("--create", action="store_true",
                   help="also add users the store has no history for (refused otherwise)")  # fmt: skip
