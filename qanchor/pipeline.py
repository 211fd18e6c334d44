"""The whole chain on one machine: build -> pretrain -> tune -> evaluate.

    qanchor run --data data/synthetic --out runs/small --preset small [--feature-repo feature_repo]
    qanchor run --data data/movielens-100k --out runs/ml100k-seed1 --preset small --seed 1

Outputs: ``<out>/built`` (dataset), ``<out>/model`` (model + scenario adapters), ``<out>/eval``
(metrics.json, report.md and charts) and ``<out>/run.json`` (stage timings). The same stage
functions back the Kubeflow components and Airflow tasks. With a feature repo, a ``features``
stage applies it over the build and materialises the online store
(``<out>/built/feature_store``), and every later stage reads user snapshots through it.

A ``seed`` goes to every stage config with a ``seed`` field (the build's split salt, model
initialisation and sampling, tuning, probes), so repeated runs measure seed variance. From
Python, ``overrides={"pretrain": {"user_skip": False}}`` changes single fields of one stage (on
top of the preset and the seed): ablations without new CLI flags.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from qanchor.config import resolve, settings
from qanchor.errors import QAnchorError

log = logging.getLogger(__name__)

STAGES = ("build", "pretrain", "tune", "evaluate")


def stage_overrides(
    cls: type,
    stage: str,
    seed: int | None,
    feature_repo: str | Path | None,
    overrides: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The fields set on one stage's config: seed, feature repo, then explicit overrides."""
    over: dict[str, Any] = {}
    if seed is not None and "seed" in settings(cls):
        over["seed"] = seed
    # The build writes the snapshots the store serves, so it never reads from the store.
    if feature_repo and stage != "build":
        over["feature_repo"] = str(feature_repo)
    return over | dict(overrides.get(stage, {}))


def run_all(
    data_dir: str | Path,
    out_dir: str | Path,
    preset: str,
    feature_repo: str | Path | None = None,
    seed: int | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """Run every stage with the named preset; returns paths and timings (also in run.json).

    Args:
        data_dir: dataset directory in the input contract.
        out_dir: the run directory (built/, model/, eval/, run.json).
        preset: preset of every stage config (tiny | small | paper).
        feature_repo: a Feast repo the stages after the build read user snapshots through.
        seed: seed of every stage config that has one; None keeps each stage's own default.
        overrides: per stage (build, pretrain, tune, evaluate), config fields to set last.
    """
    from qanchor.data.build import BuildConfig, build_dataset
    from qanchor.eval.evaluate import EvalConfig, evaluate
    from qanchor.model.config import PretrainConfig
    from qanchor.model.pretrain import pretrain
    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(STAGES))
    if unknown:
        raise QAnchorError(f"overrides for unknown stage(s) {unknown}; stages: {list(STAGES)}")
    classes = {"build": BuildConfig, "pretrain": PretrainConfig, "tune": TuneConfig,
               "evaluate": EvalConfig}  # fmt: skip
    # Resolve every config before the first stage runs: a typo fails now, not after pretraining.
    cfgs = {name: resolve(cls, preset, overrides=stage_overrides(cls, name, seed, feature_repo, overrides))
            for name, cls in classes.items()}  # fmt: skip
    out = Path(out_dir)
    paths = {"built": out / "built", "model": out / "model", "eval": out / "eval"}
    timings: dict[str, float] = {}

    def stage(name: str, fn, *args) -> None:
        # The same start/end lines as `make run` shows for the DAG's tasks.
        t0 = time.perf_counter()
        print(f"{time.strftime('%H:%M:%S')}  {name:<12} started", flush=True)
        fn(*args)
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"{time.strftime('%H:%M:%S')}  {name:<12} done in {timings[name]:.1f} s", flush=True)

    stage("build", build_dataset, data_dir, paths["built"], cfgs["build"])
    if feature_repo:
        from qanchor.features import FeatureStoreConfig, sync

        stage(
            "features", sync, FeatureStoreConfig(data=str(paths["built"]), repo=str(feature_repo))
        )
    stage("pretrain", pretrain, paths["built"], paths["model"], cfgs["pretrain"])
    stage("tune", tune_model, paths["model"], paths["built"], cfgs["tune"])
    stage("evaluate", evaluate, paths["model"], paths["built"], paths["eval"], cfgs["evaluate"])
    summary = {"preset": preset, "data": str(data_dir), "feature_repo": str(feature_repo) if feature_repo else None,
               "seed": seed, "overrides": overrides,
               "paths": {k: str(v) for k, v in paths.items()},
               "seconds": timings, "total_seconds": round(sum(timings.values()), 1)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
