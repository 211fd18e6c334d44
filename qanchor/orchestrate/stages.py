"""The retraining stages as plain functions over one run directory.

The chain (:mod:`qanchor.orchestrate.chain`) lists them in order. Each Kubeflow component
(``components/stages.py``) and so each Airflow task calls exactly one of these, and
``qanchor run`` (:func:`qanchor.pipeline.run_all`) calls them all on one machine. A stage reads
and writes fixed places under the run directory (``qanchor.orchestrate.rundir``), writes
its outputs atomically (``qanchor.io``), and records a small JSON result in
``<run>/stages/<stage>.json`` that it also returns. So a retried stage never reads a half-written
input, a rerun replaces an output whole or not at all, and a caller that only sees the shared
run directory (a task submitted to a remote Kubeflow cluster) can still read what a stage did.

    from qanchor.orchestrate import stages
    stages.build("runs/r1", "data/synthetic", "tiny")
    stages.pretrain("runs/r1", "tiny")
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from qanchor.config import resolve, shared_fields, to_dict
from qanchor.io import atomic_file
from qanchor.orchestrate.embed_stage import cores as cores
from qanchor.orchestrate.embed_stage import embed_all as embed_all
from qanchor.orchestrate.embed_stage import embed_shard as embed_shard
from qanchor.orchestrate.rundir import RunPaths, read_result, record

log = logging.getLogger(__name__)


def stage_config(cls: type, preset: str, feature_repo: str = "", overrides: dict | None = None):
    """A stage's config: the preset, the feature store if given, ``QANCHOR_BF16``, overrides."""
    from qanchor.orchestrate.settings import RunSettings

    store = {"feature_repo": feature_repo} if feature_repo else {}
    machine = shared_fields(cls, bf16=RunSettings().machine_bf16)
    return resolve(cls, preset, overrides=store | machine | dict(overrides or {}))


def build(
    run: str | Path,
    dataset: str,
    preset: str,
    scenarios: list[str] | None = None,
    overrides: dict | None = None,
) -> dict:
    """Validate and build ``dataset`` into ``<run>/built``, keeping only ``scenarios`` if given.

    ``overrides`` sets build config fields (``qanchor run --seed``, ablations); the returned
    ``tune_groups`` follow the preset's ``scenarios_per_task``.
    """
    from qanchor.data.build import BuildConfig, build_dataset
    from qanchor.data.contract import read_scenarios

    p = RunPaths(Path(run))
    chosen = {"scenarios": list(scenarios)} if scenarios else {}
    build_dataset(dataset, p.built, stage_config(BuildConfig, preset, overrides=chosen | dict(overrides or {})))  # fmt: skip
    manifest = json.loads((p.built / "manifest.json").read_text())
    names = [s.name for s in read_scenarios(p.built / "scenarios.yaml")]
    return record(p, "build", {"built": str(p.built), "scenarios": names,
                                "tune_groups": tune_groups(names, preset),
                                "content_hash": manifest["content_hash"], "rows": manifest["rows"]})  # fmt: skip


def tune_groups(names: list[str], preset: str) -> list[list[str]]:
    """The scenarios of each tune task: chunks of the preset's ``scenarios_per_task`` (0 = one)."""
    from qanchor.tune.config import TuneConfig

    n = resolve(TuneConfig, preset).scenarios_per_task or max(len(names), 1)
    return [names[i : i + n] for i in range(0, len(names), n)]


def materialize(run: str | Path, feature_repo: str = "") -> dict:
    """Apply the feature repo over ``<run>/built`` and load the online store (skipped without one)."""
    p = RunPaths(Path(run))
    if not feature_repo:
        # Without a feature store the later stages read the build's snapshots directly.
        return record(p, "materialize", {"skipped": True, "reason": "no feature repo (QANCHOR_FEATURE_REPO)"})  # fmt: skip
    from qanchor.features import FeatureStoreConfig, sync

    end = sync(FeatureStoreConfig(data=str(p.built), repo=feature_repo))
    return record(p, "materialize", {"skipped": False, "feature_repo": feature_repo,
                                      "state": str(p.features), "materialized_to": end.isoformat()})  # fmt: skip


def pretrain(
    run: str | Path,
    preset: str,
    nproc: int = 0,
    feature_repo: str = "",
    overrides: dict | None = None,
) -> dict:
    """Pretrain ``<run>/model`` on ``<run>/built``; under torchrun when there are GPUs.

    Args:
        run: the run directory.
        preset: pretraining preset.
        nproc: processes per node; 0 = one per visible GPU, or one in-process run on a CPU.
        feature_repo: read user snapshots through this feature store ("" = from the build).
        overrides: pretraining config fields to set over the preset.
    """
    import torch

    from qanchor.model.config import PretrainConfig

    p = RunPaths(Path(run))
    cfg = stage_config(PretrainConfig, preset, feature_repo, overrides)
    procs = nproc or torch.cuda.device_count()
    if procs >= 1:
        # The processes read the resolved config from a file: every field, whatever set it.
        path = p.root / "stages" / "pretrain-config.yaml"
        _write_yaml(path, to_dict(cfg))
        _torchrun(procs, ["pretrain", "--data", str(p.built), "--out", str(p.model), "--config", str(path)])  # fmt: skip
    else:
        from qanchor.model.pretrain import pretrain as run_pretrain

        run_pretrain(p.built, p.model, cfg)
    config = json.loads((p.model / "config.json").read_text())
    return record(p, "pretrain", {"model": str(p.model), "processes": max(procs, 1),
                                   "retrieval": config.get("retrieval", {})})  # fmt: skip


def _torchrun(procs: int, args: list[str]) -> None:
    """Run ``qanchor <args>`` under torchrun on this node (DDP: nccl on GPUs, gloo on CPUs)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", "-m", "qanchor.cli", *args]  # fmt: skip
    log.info("launching %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def _write_yaml(path: Path, fields: dict) -> None:
    import yaml

    with atomic_file(path) as tmp:
        tmp.write_text(yaml.safe_dump(fields, sort_keys=False))


def tune_scenarios(
    run: str | Path,
    scenarios: list[str],
    preset: str,
    feature_repo: str = "",
    overrides: dict | None = None,
) -> dict:
    """Soft-prompt tune ``scenarios`` in one process; adapters land in ``<run>/model/scenarios/``.

    The scenarios of one task share the users' prefix KV cache, and rare ones may share a prompt
    within the task's query clusters (``share``). Each adapter is written atomically, so parallel
    tasks on the same model directory do not interfere.
    """
    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    p = RunPaths(Path(run))
    cfg = stage_config(TuneConfig, preset, feature_repo, overrides)
    kept = p.guard_vectors / f"{tune_key(scenarios)}.parquet"
    adapters = tune_model(p.model, p.built, cfg, list(scenarios), guard_vectors=kept)
    keep = ("bytes", "final_loss", "steps", "seconds", "shared_with")
    tuned = {a.name: {k: a.meta.get(k) for k in keep} for a in adapters}
    return record(p, tune_key(scenarios), {"scenarios": list(scenarios), "adapters": tuned})


def tune_key(scenarios: list[str]) -> str:
    """The result name of one tune task (groups are disjoint, so their first names differ)."""
    return f"tune-{scenarios[0]}" + (f"-and-{len(scenarios) - 1}" if len(scenarios) > 1 else "")


def evaluate(
    run: str | Path, preset: str, feature_repo: str = "", overrides: dict | None = None
) -> dict:
    """Evaluate the tuned model and the baselines into ``<run>/eval`` (metrics.json, report.md).

    The users tuning's validation guard embedded are not embedded again (``guard_vectors/``).
    """
    from qanchor.eval.evaluate import EvalConfig
    from qanchor.eval.evaluate import evaluate as run_evaluate

    p = RunPaths(Path(run))
    cfg = stage_config(EvalConfig, preset, feature_repo, overrides)
    run_evaluate(p.model, p.built, p.eval, cfg, reuse=sorted(p.guard_vectors.glob("*.parquet")))
    metrics = json.loads((p.eval / "metrics.json").read_text())
    aucs = {k: v["mean_auc"] for k, v in metrics["models"].items()}
    return record(p, "evaluate", {"metrics": str(p.eval / "metrics.json"),
                                   "report": str(p.eval / "report.md"), "mean_auc": aucs})  # fmt: skip


def gate(run: str | Path, tolerance: float, name: str = "qanchor") -> dict:
    """Compare the candidate with the promoted model on the candidate's test users and
    scenarios (the served model is re-scored there); record the decision.

    A promoted model trained on another dataset or feature schema is not comparable: the
    candidate is then judged alone, and the decision says why (``qanchor.orchestrate.gate``).
    """
    from qanchor import registry
    from qanchor.orchestrate import gate as G

    p = RunPaths(Path(run))
    metrics = json.loads((p.eval / "metrics.json").read_text())
    details_path = p.eval / "eval_details.json"
    details = json.loads(details_path.read_text()) if details_path.is_file() else {}
    serving = registry.promoted(name)
    if serving is None or G.mean_auc(metrics) is None:
        decision = G.first_model(metrics, tolerance)
    elif differences := G.schema_differences(serving.path, p.built):
        decision = G.other_schema(metrics, differences, tolerance)
    else:
        decision = G.rescored(p.eval, p.built, serving, details.get("config"), tolerance)
    line = (details.get("verdict") or {}).get("line")
    decision = replace(decision, versus_baseline=G.versus_baseline(metrics, line))
    return record(p, "gate", {**decision.to_dict(), "serving_tag": serving.tag if serving else None})  # fmt: skip


def register(run: str | Path, name: str = "qanchor") -> dict:
    """Register and promote the candidate if (and only if) the recorded gate decision passed."""
    from qanchor import registry

    p = RunPaths(Path(run))
    decision = read_result(run, "gate")
    if not decision["passed"]:
        return record(p, "register", {"registered": False, "reason": decision["reason"]})
    tag = registry.register(p.model, p.eval / "metrics.json", name, labels={"run": p.root.name})
    version = registry.promote(tag, decision["reason"])
    return record(p, "register", {"registered": True, "tag": tag, "promoted": True,
                                   "path": str(version.path)})  # fmt: skip
