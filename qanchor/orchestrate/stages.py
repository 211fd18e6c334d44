"""The retraining stages as plain functions over one run directory.

Each Kubeflow component (``components/stages.py``) and so each Airflow task calls exactly one of
these. A stage reads and writes fixed places under the run directory (:class:`RunPaths`), writes
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
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qanchor.config import resolve
from qanchor.errors import QAnchorError
from qanchor.io import atomic_file, atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    """Where each stage of one run reads and writes."""

    root: Path

    @property
    def built(self) -> Path:
        return self.root / "built"

    @property
    def features(self) -> Path:
        return self.built / "feature_store"  # qanchor.features keeps its state beside the data

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    def result(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"


def workdir() -> Path:
    """Where runs go: ``QANCHOR_WORKDIR`` (shared storage in production), else beside Airflow."""
    from qanchor.orchestrate.settings import RunSettings

    return RunSettings().root()


def run_dir(workdir: str | Path, run_id: str) -> Path:
    """The run directory of an orchestrator run id (made safe as one path component)."""
    return Path(workdir) / re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_")


def feature_repo() -> str:
    """The Feast repo to read user snapshots through (``QANCHOR_FEATURE_REPO``), or "" for none."""
    from qanchor.env import read_env
    from qanchor.runtime_config import RuntimeConfig

    path = read_env(RuntimeConfig, {"QANCHOR_FEATURE_REPO": "feature_repo"}).get("feature_repo")
    return str(Path(path).expanduser().resolve()) if path else ""


def _store_overrides(repo: str) -> dict[str, Any]:
    """Config overrides that make a stage read user snapshots through the feature store."""
    return {"feature_repo": repo} if repo else {}


def run_for(run_id: str) -> str:
    """The run directory of an Airflow run id under :func:`workdir`."""
    return str(run_dir(workdir(), run_id))


def read_result(run: str | Path, stage: str) -> dict[str, Any]:
    """The recorded result of a finished stage (clear error if it did not run)."""
    path = RunPaths(Path(run)).result(stage)
    if not path.is_file():
        raise QAnchorError(f"stage {stage!r} has no result in {run} (did it run?)")
    return json.loads(path.read_text())


def _record(paths: RunPaths, stage: str, result: dict[str, Any]) -> dict[str, Any]:
    atomic_write_json(paths.result(stage), result)
    log.info("stage %s: %s", stage, result)
    return result


def build(run: str | Path, dataset: str, preset: str, scenarios: list[str] | None = None) -> dict:
    """Validate and build ``dataset`` into ``<run>/built``, keeping only ``scenarios`` if given."""
    from qanchor.data.build import BuildConfig, build_dataset
    from qanchor.data.contract import read_scenarios

    p = RunPaths(Path(run))
    cfg = resolve(BuildConfig, preset, overrides={"scenarios": list(scenarios or [])})
    build_dataset(dataset, p.built, cfg)
    manifest = json.loads((p.built / "manifest.json").read_text())
    names = [s.name for s in read_scenarios(p.built / "scenarios.yaml")]
    return _record(p, "build", {"built": str(p.built), "scenarios": names,
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
        return _record(p, "materialize", {"skipped": True, "reason": "no feature repo (QANCHOR_FEATURE_REPO)"})  # fmt: skip
    from qanchor.features import FeatureStoreConfig, sync

    end = sync(FeatureStoreConfig(data=str(p.built), repo=feature_repo))
    return _record(p, "materialize", {"skipped": False, "feature_repo": feature_repo,
                                      "state": str(p.features), "materialized_to": end.isoformat()})  # fmt: skip


def pretrain(run: str | Path, preset: str, nproc: int = 0, feature_repo: str = "") -> dict:
    """Pretrain ``<run>/model`` on ``<run>/built``; under torchrun when there are GPUs.

    Args:
        run: the run directory.
        preset: pretraining preset.
        nproc: processes per node; 0 = one per visible GPU, or one in-process run on a CPU.
        feature_repo: read user snapshots through this feature store ("" = from the build).
    """
    import torch

    p = RunPaths(Path(run))
    procs = nproc or torch.cuda.device_count()
    if procs >= 1:
        store = ["--feature-repo", feature_repo] if feature_repo else []
        _torchrun(procs, ["pretrain", "--data", str(p.built), "--out", str(p.model), "--preset", preset, *store])  # fmt: skip
    else:
        from qanchor.model.config import PretrainConfig
        from qanchor.model.pretrain import pretrain as run_pretrain

        run_pretrain(p.built, p.model, resolve(PretrainConfig, preset, overrides=_store_overrides(feature_repo)))  # fmt: skip
    config = json.loads((p.model / "config.json").read_text())
    return _record(p, "pretrain", {"model": str(p.model), "processes": max(procs, 1),
                                   "retrieval": config.get("retrieval", {})})  # fmt: skip


def _torchrun(procs: int, args: list[str]) -> None:
    """Run ``qanchor <args>`` under torchrun on this node (DDP: nccl on GPUs, gloo on CPUs)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", "-m", "qanchor.cli", *args]  # fmt: skip
    log.info("launching %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def tune_scenarios(run: str | Path, scenarios: list[str], preset: str, feature_repo: str = "") -> dict:  # fmt: skip
    """Soft-prompt tune ``scenarios`` in one process; adapters land in ``<run>/model/scenarios/``.

    The scenarios of one task share the users' prefix KV cache, and rare ones may share a prompt
    within the task's query clusters (``share``). Each adapter is written atomically, so parallel
    tasks on the same model directory do not interfere.
    """
    from qanchor.tune.config import TuneConfig
    from qanchor.tune.prompt import tune_model

    p = RunPaths(Path(run))
    cfg = resolve(TuneConfig, preset, overrides=_store_overrides(feature_repo))
    adapters = tune_model(p.model, p.built, cfg, list(scenarios))
    keep = ("bytes", "final_loss", "steps", "seconds", "shared_with")
    tuned = {a.name: {k: a.meta.get(k) for k in keep} for a in adapters}
    return _record(p, tune_key(scenarios), {"scenarios": list(scenarios), "adapters": tuned})


def tune_key(scenarios: list[str]) -> str:
    """The result name of one tune task (groups are disjoint, so their first names differ)."""
    return f"tune-{scenarios[0]}" + (f"-and-{len(scenarios) - 1}" if len(scenarios) > 1 else "")


def evaluate(run: str | Path, preset: str, feature_repo: str = "") -> dict:
    """Evaluate the tuned model and the baselines into ``<run>/eval`` (metrics.json, report.md)."""
    from qanchor.eval.evaluate import EvalConfig
    from qanchor.eval.evaluate import evaluate as run_evaluate

    p = RunPaths(Path(run))
    run_evaluate(p.model, p.built, p.eval, resolve(EvalConfig, preset, overrides=_store_overrides(feature_repo)))  # fmt: skip
    metrics = json.loads((p.eval / "metrics.json").read_text())
    aucs = {k: v["mean_auc"] for k, v in metrics["models"].items()}
    return _record(p, "evaluate", {"metrics": str(p.eval / "metrics.json"),
                                   "report": str(p.eval / "report.md"), "mean_auc": aucs})  # fmt: skip


def gate(run: str | Path, tolerance: float, name: str = "qanchor") -> dict:
    """Compare the candidate with the promoted model on the candidate's test users and
    scenarios (the served model is re-scored there); record the decision."""
    from qanchor import registry
    from qanchor.eval.evaluate import SCORES_FILE, EvalConfig, rescore
    from qanchor.eval.probe import results_from_frame
    from qanchor.model.artifact import read_config
    from qanchor.orchestrate import gate as G

    p = RunPaths(Path(run))
    metrics = json.loads((p.eval / "metrics.json").read_text())
    serving = registry.promoted(name)
    if serving is None or G.mean_auc(metrics) is None:
        decision = G.first_model(metrics, tolerance)
    else:
        import pandas as pd

        candidate = results_from_frame(pd.read_parquet(p.eval / SCORES_FILE), G.GATED_MODEL)
        # The candidate's preset sets the re-scoring's cache and precision, as it did evaluate's.
        preset = read_config(p.model).get("pretrain", {}).get("preset") or "small"
        served, bare = rescore(serving.path, p.built, resolve(EvalConfig, preset))
        decision = G.compare(candidate, served, tolerance)
        decision = replace(
            decision, serving_recorded_auc=G.mean_auc(serving.metrics), bare_query_scenarios=bare
        )
    details_path = p.eval / "eval_details.json"
    details = json.loads(details_path.read_text()) if details_path.is_file() else {}
    line = (details.get("verdict") or {}).get("line")
    decision = replace(decision, versus_baseline=G.versus_baseline(metrics, line))
    return _record(p, "gate", {**decision.to_dict(), "serving_tag": serving.tag if serving else None})  # fmt: skip


def register(run: str | Path, name: str = "qanchor") -> dict:
    """Register and promote the candidate if (and only if) the recorded gate decision passed."""
    from qanchor import registry

    p = RunPaths(Path(run))
    decision = read_result(run, "gate")
    if not decision["passed"]:
        return _record(p, "register", {"registered": False, "reason": decision["reason"]})
    tag = registry.register(p.model, p.eval / "metrics.json", name, labels={"run": p.root.name})
    version = registry.promote(tag, decision["reason"])
    return _record(p, "register", {"registered": True, "tag": tag, "promoted": True,
                                   "path": str(version.path)})  # fmt: skip


def embed_shard(run: str | Path, shard: int, num_shards: int, scenarios: list[str] | None = None) -> dict:  # fmt: skip
    """Embed every ``num_shards``-th user (offset ``shard``) x the tuned scenarios into one file."""
    import pandas as pd

    from qanchor.infer.engine import Embedder
    from qanchor.model.data import BuiltData

    if not 0 <= shard < num_shards:
        raise QAnchorError(f"shard {shard} is not in [0, {num_shards})")
    p = RunPaths(Path(run))
    data = BuiltData.load(p.built)
    users = sorted(data.snapshots["user_id"])[shard::num_shards]
    emb = Embedder.from_dir(p.model)
    emb.load_users(data.snapshots[data.snapshots["user_id"].isin(users)], data.profiles)
    names = list(scenarios or sorted(emb.adapters))
    vecs = emb.embed(users, names) if users else []
    rows = [(u, s, vecs[i][j].tolist()) for i, u in enumerate(users) for j, s in enumerate(names)]
    path = p.embeddings / f"shard-{shard:05d}-of-{num_shards:05d}.parquet"
    with atomic_file(path) as tmp:
        frame = pd.DataFrame(rows, columns=["user_id", "scenario", "embedding"])
        frame.assign(model_version=emb.model_version).to_parquet(tmp, index=False)
    return _record(p, f"embed-{shard}", {"path": str(path), "users": len(users), "scenarios": names})  # fmt: skip


def summarize(run: str | Path) -> dict:
    """What the run produced and decided, from the recorded stage results (for notifications)."""
    p = RunPaths(Path(run))
    out: dict[str, Any] = {"run": str(p.root)}
    for stage in ("build", "evaluate", "gate", "register"):
        path = p.result(stage)
        out[stage] = json.loads(path.read_text()) if path.is_file() else None
    out["metrics"] = str(p.eval / "metrics.json")
    out["report"] = str(p.eval / "report.md")
    return out


def announce(run: str | Path, smtp=None) -> dict:
    """Print the run's outcome (the Airflow task log and ``make run`` show it); write summary.json.

    With ``smtp`` (:class:`qanchor.monitoring.alert.SmtpSettings`) a rejection by the gate is
    also e-mailed (:func:`qanchor.orchestrate.notice.rejection_message`).
    """
    summary = summarize(run)
    gate_result, reg = summary["gate"] or {}, summary["register"] or {}
    if reg.get("registered"):
        outcome = f"registered and promoted {reg['tag']}"
    elif gate_result:
        outcome = f"not registered: {gate_result.get('reason')}"
    else:
        outcome = "stopped before the quality gate"
    lines = [f"qanchor retraining run {summary['run']}", f"gate: {gate_result.get('reason', '-')}",
             f"outcome: {outcome}", f"metrics: {summary['metrics']}", f"report:  {summary['report']}"]  # fmt: skip
    print("\n".join(lines), flush=True)
    emailed = False
    if smtp is not None and gate_result and not gate_result.get("passed"):
        from qanchor.monitoring.alert import send_email
        from qanchor.orchestrate.notice import rejection_message

        send_email(smtp, *rejection_message(summary))
        emailed = True
    summary |= {"outcome": outcome, "emailed": emailed}
    atomic_write_json(RunPaths(Path(run)).root / "summary.json", summary)
    return summary
