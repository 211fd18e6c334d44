"""Evaluate a tuned model against its base and the baselines; write metrics.json and a report.

    qanchor evaluate --model runs/model --data data/built --out runs/eval --preset small

Every model's features go through the same linear probe per scenario (trained on train+val
users, scored on test users), so the comparison isolates the representations. ``tfidf_lr`` and
``gbdt_features`` are classifiers of their own, trained on the same users. report.md opens with
a verdict: the winner, its margin with a paired bootstrap interval, the preset.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from qanchor.config import to_dict
from qanchor.eval.config import EvalConfig
from qanchor.eval.model_features import qanchor_features
from qanchor.eval.report import MODEL_ORDER

log = logging.getLogger(__name__)

MODELS = MODEL_ORDER
BAG_BASELINES = ("tfidf_lr", "text_mean_pool")  # need the build's whole-history bag columns


SCORES_FILE = (
    "test_scores.parquet"  # every model's test-user scores (qanchor.eval.probe.scores_frame)
)


def evaluate(
    model_dir: str | Path, built_dir: str | Path, out_dir: str | Path, cfg: EvalConfig,
    reuse: list[Path] = (),
) -> Path:  # fmt: skip
    """Run every model and baseline; returns the directory holding metrics.json and report.md.
    ``reuse``: (user, suffix) vectors computed before (:mod:`qanchor.infer.pair_store`)."""
    from qanchor.data.contract import read_scenarios
    from qanchor.eval.bag_baselines import require_bags
    from qanchor.eval.probe import probe_scenarios, scores_frame
    from qanchor.eval.report import add_details, write_metrics, write_report
    from qanchor.eval.verdict import verdict
    from qanchor.io import atomic_dir
    from qanchor.model.artifact import read_config
    from qanchor.model.data import BuiltData
    from qanchor.tune.adapters import load_adapters

    model_dir, labels = Path(model_dir), _evaluated(Path(built_dir), cfg)
    config, evaluated = read_config(model_dir), sorted(set(labels["user_id"]))
    # Only the evaluated sample's rows: memory follows max_users, not the build's size.
    data = BuiltData.load(built_dir, cfg.runtime.feature_repo, users=evaluated)
    scen, mcfg = read_scenarios(data.root / "scenarios.yaml"), config["model"]
    if any(b in cfg.baselines for b in BAG_BASELINES):
        require_bags(data.root)  # fail before the expensive embedding if the build lacks the bag
    from qanchor.progress import bar as progress

    embedded = qanchor_features(model_dir, data, scen, cfg.runtime.bf16, users=evaluated, reuse=reuse)  # fmt: skip
    times = embedded.times
    times.pop("bare_query_scenarios")
    times["users_evaluated"] = _users_line(len(evaluated), data.root, cfg)
    results, clock = {}, [time.perf_counter()]
    # One step per model, each timed (a baseline's features and probe; qanchor's probes only:
    # their shared embedding is timed above).
    bar = progress(total=2 + len([b for b in cfg.baselines if b in MODELS]), desc="evaluate",
               unit="model")  # fmt: skip

    def scored(name: str, result) -> None:
        results[name] = result
        times[f"{name}_s"] = round(time.perf_counter() - clock[0], 1)
        clock[0] = time.perf_counter()
        bar.set_postfix_str(name, refresh=False)
        bar.update()

    scored("qanchor_tuned", probe_scenarios(embedded.tuned, labels))
    scored("qanchor_base", probe_scenarios(embedded.base, labels))
    _run_baselines(cfg, data, scen, labels, mcfg, scored, times)
    bar.close()
    extra = _extra_md({a.name: a.meta.get("bytes") for a in load_adapters(model_dir)}, times)
    out_dir = Path(out_dir)
    preset = cfg.preset or config.get("pretrain", {}).get("preset")
    with atomic_dir(out_dir) as tmp:
        metrics = write_metrics(tmp, data.manifest.get("input", str(data.root)), [s.name for s in scen], results)  # fmt: skip
        scores_frame(results, labels).to_parquet(tmp / SCORES_FILE, index=False)
        embedded.write_tuned(tmp)  # the embed stage of this run reuses them
        v = verdict(
            metrics, results, preset, random_parts(mcfg), cfg.bootstrap_resamples, cfg.runtime.seed
        )
        # The settings (precision, seed, cache) the gate re-scores the served model with; timings.
        add_details(tmp, verdict=v, config=to_dict(cfg), timings=times)
        write_report(tmp, metrics, results, extra, verdict=v)
    return out_dir


def _run_baselines(
    cfg: EvalConfig, data, scen: list, labels: pd.DataFrame, mcfg: dict, scored, times: dict
) -> None:
    """Score each baseline of ``cfg.baselines`` (``scored(name, results)``), in a fixed order.

    The text baselines encode with the model's own event encoder and caps; ``llm_untrained``
    reads the model's own backbone, untrained.
    """
    from qanchor.eval.bag_baselines import read_bags, tfidf_lr_probe
    from qanchor.eval.baselines import gbdt_features

    if "tfidf_lr" in cfg.baselines:
        _, bags = read_bags(data.root, users=set(labels["user_id"]))
        scored("tfidf_lr", tfidf_lr_probe(bags, labels, seed=cfg.runtime.seed))
    if "gbdt_features" in cfg.baselines:
        scored("gbdt_features", gbdt_features(data.root, seed=cfg.runtime.seed, labels=labels))
    _feature_baselines(cfg, data, scen, labels, mcfg, scored, times)


def _feature_baselines(
    cfg: EvalConfig, data, scen: list, labels: pd.DataFrame, mcfg: dict, scored, times: dict
) -> None:
    """The baselines whose features go through the linear probe, read from the feature cache
    (:mod:`qanchor.eval.feature_cache`) when this build and these settings were seen."""
    from qanchor.eval.baselines import text_mean_pool_features, text_mean_pool_recent_features
    from qanchor.eval.feature_cache import cached
    from qanchor.eval.llm_baseline import llm_untrained_features
    from qanchor.eval.probe import probe_scenarios

    enc = {"encoder": mcfg["encoder"], "max_length": mcfg["encoder_max_length"]}
    # The model's view of numbers in texts (a model from before the option: exact texts); in the
    # cache key only when rounded, so features cached for exact texts stay valid.
    if mcfg.get("text_numbers", "keep") != "keep":
        enc["numbers"] = mcfg["text_numbers"]
    hits = []

    def features(name: str, params: dict, compute):
        feats, hit = cached(data.manifest, name, params, compute, cfg.cache_features)
        hits.extend([name] if hit else [])
        return feats

    if "text_mean_pool" in cfg.baselines:
        feats = features("text_mean_pool", enc, lambda: text_mean_pool_features(data.root, **enc))
        scored("text_mean_pool", probe_scenarios(feats, labels))
    if "text_mean_pool_recent" in cfg.baselines:
        recent = {**enc, "per_source": mcfg["events_per_source"], "caps": mcfg["source_caps"]}
        feats = features("text_mean_pool_recent", recent,
                         lambda: text_mean_pool_recent_features(data.root, **recent))  # fmt: skip
        scored("text_mean_pool_recent", probe_scenarios(feats, labels))
    if "llm_untrained" in cfg.baselines:
        budget = cfg.llm_max_prefix_tokens or times["prefix_tokens_max"]
        snaps = data.snapshots[data.snapshots["user_id"].isin(labels["user_id"])]
        queries = {s.name: s.query for s in scen}
        args = (mcfg["backbone"], mcfg["backbone_layers"], snaps, queries, cfg.llm_per_source,
                budget)  # fmt: skip
        params = {"args": [*args[:2], queries, *args[4:]], "bf16": cfg.runtime.bf16,
                  "users": sorted(snaps["user_id"])}  # fmt: skip
        feats = features("llm_untrained", params,
                         lambda: llm_untrained_features(*args, bf16=cfg.runtime.bf16))  # fmt: skip
        scored("llm_untrained", probe_scenarios(feats, labels))
    if hits:
        times["baseline_features_cached"] = ", ".join(hits)


def rescore(
    model_dir: str | Path, built_dir: str | Path, cfg: EvalConfig
) -> tuple[dict, list[str]]:
    """Another model's ``qanchor_tuned`` probe results on this build's users and scenarios.

    What the promotion gate compares a candidate with: the served model scored on the
    candidate's test users, through the same probe. A scenario the model has an adapter for uses
    it; any other scenario is embedded with its query alone (as the service embeds free text).

    Returns:
        ``(results, bare)``: scenario -> (y_test, scores), and the scenarios scored without an
        adapter.
    """
    from qanchor.data.contract import read_scenarios
    from qanchor.eval.probe import probe_scenarios
    from qanchor.model.data import BuiltData

    labels = _evaluated(Path(built_dir), cfg)
    users = sorted(set(labels["user_id"]))
    data = BuiltData.load(built_dir, cfg.runtime.feature_repo, users=users)
    scen = read_scenarios(data.root / "scenarios.yaml")
    got = qanchor_features(
        Path(model_dir), data, scen, cfg.runtime.bf16, base=False, users=users
    )  # fmt: skip
    # The probe's default seed, as evaluate() uses: the same model gives the same scores.
    return probe_scenarios(got.tuned, labels), got.times["bare_query_scenarios"]


def _evaluated(built: Path, cfg: EvalConfig) -> pd.DataFrame:
    """The label rows evaluation scores: the build's, of at most ``cfg.max_users`` users."""
    from qanchor.eval.probe import sample_users
    from qanchor.model.data import require_built

    labels = pd.read_parquet(require_built(built) / "labels.parquet")
    return sample_users(labels, cfg.max_users, cfg.runtime.seed)


def _users_line(evaluated: int, built: Path, cfg: EvalConfig) -> str:
    total = pd.read_parquet(built / "users.parquet", columns=["user_id"])["user_id"].nunique()
    sample = f" (a seeded sample, max_users {cfg.max_users:,})" if evaluated < total else ""
    return f"{evaluated:,} of {total:,}{sample}"


def random_parts(model_cfg: dict) -> list[str]:
    """Which parts of a model are random weights: the ``tiny`` backbone/encoder of tests."""
    return [f"{k} `tiny`" for k in ("backbone", "encoder") if model_cfg.get(k) == "tiny"]


def _extra_md(sizes: dict, times: dict) -> str:
    lines = ["## Scenario adapters", "", "| scenario | adapter bytes |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(sizes.items())]
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k.removesuffix('_s').replace('_', ' ')} | {v:.1f} |"
              for k, v in times.items() if k.endswith("_s")]  # fmt: skip
    for key, value in times.items():  # counters (e.g. the prefix cache's), one line each
        if not key.endswith("_s"):
            if isinstance(value, dict):
                value = ", ".join(
                    f"{k.replace('_', ' ')} {_number(k, v)}" for k, v in value.items()
                )
            lines += ["", f"{key.replace('_', ' ').capitalize()}: {value}."]
    return "\n".join(lines) + "\n"


def _number(key: str, value) -> str:
    if "bytes" in key and isinstance(value, int):
        return f"{value / (1 << 20):,.1f} MB"
    return f"{value:,}" if isinstance(value, int) else str(value)
