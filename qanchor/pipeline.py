"""The whole chain on one machine: the stages of ``qanchor.orchestrate.chain``.

    qanchor run --data data/synthetic --out runs/small --preset small [--feature-repo feature_repo]
    qanchor run --data data/movielens-100k --out runs/ml100k-seed1 --preset small --seed 1 --through evaluate

build -> materialize -> pretrain -> tune -> evaluate -> gate -> register -> embed, through the
same stage functions as the Kubeflow components and Airflow tasks. Outputs: ``<out>/built``
(dataset), ``<out>/model`` (model + scenario adapters), ``<out>/eval`` (metrics.json, report.md
and charts), ``<out>/embeddings`` (every user x tuned scenario), ``<out>/stages`` (each stage's
result) and ``<out>/run.json`` (each stage's seconds and peak resident memory). A passing candidate is registered and promoted in
the BentoML model store (``BENTOML_HOME``); ``--through evaluate`` stops before the gate and
leaves the store alone. With a feature repo, ``materialize`` applies it over the build and loads
the online store (``<out>/built/feature_store``), and every later stage reads user snapshots
through it.

A ``seed`` goes to every stage config with a ``seed`` field (the build's split salt, model
initialisation and sampling, tuning, probes), so repeated runs measure seed variance. From
Python, ``overrides={"pretrain": {"user_skip": False}}`` changes single fields of one stage (on
top of the preset and the seed): ablations without new CLI flags.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qanchor.config import resolve, shared_fields
from qanchor.errors import QAnchorError

log = logging.getLogger(__name__)

# The stages with a config, and so with presets, seeds and overrides.
CONFIGURED = ("build", "pretrain", "tune", "evaluate")


def config_classes() -> dict[str, type]:
    """The config class of each configured stage."""
    from qanchor.data.build_config import BuildConfig
    from qanchor.eval.config import EvalConfig
    from qanchor.model.config import PretrainConfig
    from qanchor.tune.config import TuneConfig

    return {"build": BuildConfig, "pretrain": PretrainConfig, "tune": TuneConfig,
            "evaluate": EvalConfig}  # fmt: skip


def stage_overrides(
    cls: type, seed: int | None, overrides: dict[str, Any], bf16: str | None = None
) -> dict[str, Any]:
    """The fields set on one stage's config: the run-wide seed and bf16, then explicit ones."""
    return shared_fields(cls, seed=seed, bf16=bf16) | dict(overrides)


def resolve_overrides(
    preset: str, seed: int | None, overrides: dict[str, dict[str, Any]] | None,
    bf16: str | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each configured stage's overrides, every config resolved once so a typo fails now."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(CONFIGURED))
    if unknown:
        raise QAnchorError(f"overrides for unknown stage(s) {unknown}; stages: {list(CONFIGURED)}")
    out = {}
    for name, cls in config_classes().items():
        out[name] = stage_overrides(cls, seed, overrides.get(name, {}), bf16)
        resolve(cls, preset, overrides=out[name])
    return out


def run_all(
    data_dir: str | Path,
    out_dir: str | Path,
    preset: str,
    feature_repo: str | Path | None = None,
    seed: int | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    through: str = "embed",
    model_name: str = "qanchor",
    tolerance: float = 0.01,
    bf16: str | None = None,
) -> dict:
    """Run the chain's stages in this process with the named preset; returns paths and timings.

    The stages are those of :data:`qanchor.orchestrate.chain.CHAIN`, called through the same
    functions (:mod:`qanchor.orchestrate.stages`) as the Kubeflow components and Airflow tasks,
    over the run directory ``out_dir``. The stages before batch embedding run in three spawned
    processes, one after another (:data:`FRESH_AT`); tuning runs its scenario groups in turn;
    batch embedding runs one one-thread share per core (this process and spawned ones). A
    candidate the gate rejects is neither registered nor embedded (``run.json`` says so).

    Args:
        data_dir: dataset directory in the input contract.
        out_dir: the run directory (built/, model/, eval/, embeddings/, stages/, run.json).
        preset: preset of every stage config (tiny | small | paper).
        feature_repo: a Feast repo the stages after the build read user snapshots through.
        seed: seed of every stage config that has one; None keeps each stage's own default.
        overrides: per configured stage (build, pretrain, tune, evaluate), fields to set last.
        through: the last stage to run (``evaluate``: an experiment that leaves the model store
            alone).
        model_name: the model store name the gate compares with and register promotes into.
        tolerance: the gate's allowed drop in mean AUC.
        bf16: bf16 autocast of every stage that runs the model (auto/on/off); None keeps each
            stage's preset.
    """
    from qanchor.orchestrate import chain, rundir

    plan = chain.through(through)
    over = resolve_overrides(preset, seed, overrides, bf16)
    repo = str(Path(feature_repo).expanduser().resolve()) if feature_repo else ""
    run = Path(out_dir)
    args = (run, str(data_dir), preset, repo, over, model_name, tolerance)
    head = [s.name for s in plan if s.each != "shard"]
    done: Done = ({}, {}, {})
    for names in process_groups(head):
        done = _in_fresh_process(names, args, done)
    results, timings, peaks = done
    if len(head) < len(plan):  # the embed stage, from this process, which holds no model
        _run_stages(plan[len(head) :], _stage_calls(*args), (results, timings, peaks))
    paths = rundir.RunPaths(run)
    summary = {"preset": preset, "data": str(data_dir), "feature_repo": repo or None,
               "seed": seed, "bf16": bf16, "overrides": overrides or {}, "stages": [s.name for s in plan],
               "paths": {"built": str(paths.built), "model": str(paths.model), "eval": str(paths.eval),
                         "embeddings": str(paths.embeddings)},
               "gate": results.get("gate"), "register": results.get("register"),
               "seconds": timings, "total_seconds": round(sum(timings.values()), 1),
               "peak_rss_mb": peaks}  # fmt: skip
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


Done = tuple[dict[str, Any], dict[str, float], dict[str, float]]  # results, seconds, peak MB


# Stages that start a process of their own (the stages after each share it, until the next).
# A process keeps native memory its stages freed, and the next stage ran on top of it: at
# 100,000 users evaluate peaked at 4.7 GB after tune in the same process and 2.9 GB alone, tune
# at 5.1 GB after pretraining and 4.3 GB alone. The others share a process (each start imports
# torch, transformers and peft: ~9 s here).
FRESH_AT = ("build", "tune", "evaluate")


def process_groups(names: list[str]) -> list[list[str]]:
    """``names`` cut into the runs of stages that share a process (:data:`FRESH_AT`)."""
    groups: list[list[str]] = []
    for n in names:
        if not groups or n in FRESH_AT:
            groups.append([])
        groups[-1].append(n)
    return groups


def _in_fresh_process(names: list[str], args: tuple, done: Done) -> Done:
    """The stages ``names`` (:func:`_run_head`) in a spawned process, after the stages ``done``:
    what they leave in the heap goes when it exits.

    At 100,000 users the process that ran every stage through register still held 1.4 GB that
    no Python object referenced (native memory ``malloc_trim`` did not return), and the embed
    stage ran on top of it: 4.4 GB for that process and its worker, 3.0 GB from a process that
    ran none.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A spawned process inherits the environment, not the logging setup or warning filters.
    level = logging.getLogger().level
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_head, names, args, level, done).result()


def _run_head(names: list[str], args: tuple, level: int, done: Done) -> Done:
    """The named stages in order, after ``done``, in a spawned process set up as the parent's
    console is."""
    from qanchor.orchestrate import chain

    if level > logging.INFO:  # the CLI quiets third-party noise exactly when it is not -v
        from qanchor.noise import quiet_third_party

        quiet_third_party()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return _run_stages([chain.stage(n) for n in names], _stage_calls(*args), done)


def _run_stages(plan: list, calls: dict, done: Done | None = None) -> Done:
    """Call each stage of ``plan`` in order: its result, seconds and peak memory (MB) by name,
    added to ``done`` (the results of the stages before it)."""
    from qanchor.memory import release_memory
    from qanchor.orchestrate.peak import PeakMemory

    results, timings, peaks = done or ({}, {}, {})
    for s in plan:
        if s.gated and not results["gate"]["passed"]:
            _say(s.name, "skipped: the gate rejected the candidate")
            continue
        # The same start/end lines as `make run` shows for the DAG's tasks.
        t0 = time.perf_counter()
        _say(s.name, "started")
        with PeakMemory() as peak:
            results[s.name] = calls[s.name](results)
        timings[s.name], peaks[s.name] = round(time.perf_counter() - t0, 1), peak.mb
        release_memory()
        _say(s.name, f"done in {timings[s.name]:.1f} s, peak memory {peak.mb:,.0f} MB")
    return results, timings, peaks


def _say(stage: str, what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {stage:<12} {what}", flush=True)


def _stage_calls(
    run: Path, data: str, preset: str, repo: str, over: dict, model_name: str, tolerance: float
) -> dict[str, Callable[[dict], Any]]:
    """Each stage of the chain as a call in this process, given the results of earlier stages.

    Tuning runs the build's scenario groups one after another; embedding runs one one-thread
    share per core, this process's and spawned ones.
    """
    from qanchor.orchestrate import stages

    def tune(results: dict) -> list[dict]:
        groups = results["build"]["tune_groups"]
        return [stages.tune_scenarios(run, g, preset, repo, over["tune"]) for g in groups]

    return {
        "build": lambda _: stages.build(run, data, preset, None, over["build"]),
        "materialize": lambda _: stages.materialize(run, repo),
        "pretrain": lambda _: stages.pretrain(run, preset, 0, repo, over["pretrain"]),
        "tune": tune,
        "evaluate": lambda _: stages.evaluate(run, preset, repo, over["evaluate"]),
        "gate": lambda _: stages.gate(run, tolerance, model_name),
        "register": lambda _: stages.register(run, model_name),
        "embed": lambda _: stages.embed_all(run),
    }
