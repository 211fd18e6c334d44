"""The whole chain on one machine: build -> pretrain -> tune -> evaluate.

    qanchor run --data data/synthetic --out runs/small --preset small [--feature-repo feature_repo]

Outputs: ``<out>/built`` (dataset), ``<out>/model`` (model + scenario adapters), ``<out>/eval``
(metrics.json, report.md and charts) and ``<out>/run.json`` (stage timings). The same stage
functions back the Kubeflow components and Airflow tasks. With a feature repo, a ``features``
stage applies it over the build and materialises the online store
(``<out>/built/feature_store``), and every later stage reads user snapshots through it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from qanchor.config import resolve

log = logging.getLogger(__name__)


def run_all(
    data_dir: str | Path, out_dir: str | Path, preset: str, feature_repo: str | Path | None = None
) -> dict:
    """Run every stage with the named preset; returns paths and timings (also in run.json)."""
    from qanchor.data.build import BuildConfig, build_dataset
    from qanchor.eval.evaluate import EvalConfig, evaluate
    from qanchor.model.config import PretrainConfig
    from qanchor.model.pretrain import pretrain
    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    out = Path(out_dir)
    paths = {"built": out / "built", "model": out / "model", "eval": out / "eval"}
    timings: dict[str, float] = {}

    def stage(name: str, fn, *args) -> None:
        t0 = time.perf_counter()
        log.info("stage %s", name)
        fn(*args)
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] done in {timings[name]:.1f}s", flush=True)

    stage("build", build_dataset, data_dir, paths["built"], resolve(BuildConfig, preset))
    over = {"feature_repo": str(feature_repo)} if feature_repo else None
    if feature_repo:
        from qanchor.features import FeatureStoreConfig, sync

        stage(
            "features", sync, FeatureStoreConfig(data=str(paths["built"]), repo=str(feature_repo))
        )
    stage(
        "pretrain",
        pretrain,
        paths["built"],
        paths["model"],
        resolve(PretrainConfig, preset, overrides=over),
    )
    stage(
        "tune",
        tune_model,
        paths["model"],
        paths["built"],
        resolve(TuneConfig, preset, overrides=over),
    )
    stage(
        "evaluate",
        evaluate,
        paths["model"],
        paths["built"],
        paths["eval"],
        resolve(EvalConfig, preset, overrides=over),
    )
    summary = {"preset": preset, "data": str(data_dir), "feature_repo": over and over["feature_repo"],
               "paths": {k: str(v) for k, v in paths.items()},
               "seconds": timings, "total_seconds": round(sum(timings.values()), 1)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
