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
from qanchor.eval.report import MODEL_ORDER

log = logging.getLogger(__name__)

MODELS = MODEL_ORDER
BAG_BASELINES = ("tfidf_lr", "text_mean_pool")  # need the build's whole-history bag columns


SCORES_FILE = (
    "test_scores.parquet"  # every model's test-user scores (qanchor.eval.probe.scores_frame)
)


def qanchor_features(
    model_dir: Path, data, scenarios: list, cache_mb: int, bf16: str = "off", base: bool = True
) -> tuple[dict, dict | None, dict]:
    """Per-scenario embedding frames with the tuned prompts and (``base``) without, and timings.

    A scenario the model has no adapter for is embedded with its query alone in both (never
    with its name, which is an identifier, not a question).
    """
    from qanchor.infer.engine import Embedder, Suffix

    emb = Embedder.from_dir(model_dir, cache_bytes=cache_mb << 20, bf16=bf16)
    users = sorted(set(data.users["user_id"]))
    emb.load_users(data.snapshots[data.snapshots["user_id"].isin(users)], data.profiles)
    rows = emb.rows(users)
    queries = [emb.adapters[s.name].query if s.name in emb.adapters else s.query for s in scenarios]
    times = {}
    t0 = time.perf_counter()
    tuned = emb.embed_rows(rows, [emb.adapters.get(s.name) or Suffix(q) for s, q in zip(scenarios, queries, strict=True)]).numpy()  # fmt: skip
    times["qanchor_tuned_embed_s"] = round(time.perf_counter() - t0, 1)
    if base:
        t0 = time.perf_counter()
        base_vecs = emb.embed_rows(rows, [Suffix(q) for q in queries]).numpy()
        times["qanchor_base_embed_s"] = round(time.perf_counter() - t0, 1)
    idx = pd.Index(users, name="user_id")

    def frames(x) -> dict[str, pd.DataFrame]:
        return {s.name: pd.DataFrame(x[:, j], index=idx) for j, s in enumerate(scenarios)}

    bare = [s.name for s in scenarios if s.name not in emb.adapters]
    times |= {"prefix_cache": emb.cache.stats(), "bare_query_scenarios": bare}
    return frames(tuned), frames(base_vecs) if base else None, times


def evaluate(
    model_dir: str | Path, built_dir: str | Path, out_dir: str | Path, cfg: EvalConfig
) -> Path:
    """Run every model and baseline; returns the directory holding metrics.json and report.md."""
    from qanchor.data.contract import read_scenarios
    from qanchor.eval.bag_baselines import read_bags
    from qanchor.eval.probe import probe_scenarios, scores_frame
    from qanchor.eval.report import add_details, write_metrics, write_report
    from qanchor.eval.verdict import verdict
    from qanchor.io import atomic_dir
    from qanchor.model.artifact import read_config
    from qanchor.model.data import BuiltData
    from qanchor.tune.adapters import load_adapters

    model_dir, data = Path(model_dir), BuiltData.load(built_dir, cfg.runtime.feature_repo)
    scen = read_scenarios(data.root / "scenarios.yaml")
    names = [s.name for s in scen]
    labels = pd.read_parquet(data.root / "labels.parquet")
    config = read_config(model_dir)
    mcfg = config["model"]
    if any(b in cfg.baselines for b in BAG_BASELINES):
        read_bags(data.root)  # fail before the expensive embedding if the build lacks the bag
    from qanchor.progress import bar as progress

    results, times = {}, {}
    # One step per model: the embedding of both qanchor models is the long first step.
    bar = progress(total=2 + len([b for b in cfg.baselines if b in MODELS]), desc="evaluate",
               unit="model", postfix="qanchor embeddings")  # fmt: skip

    def scored(name: str, result) -> None:
        results[name] = result
        bar.set_postfix_str(name, refresh=False)
        bar.update()

    tuned, base, times = qanchor_features(
        model_dir, data, scen, cfg.runtime.cache_mb, cfg.runtime.bf16
    )
    times.pop("bare_query_scenarios")
    scored("qanchor_tuned", probe_scenarios(tuned, labels))
    scored("qanchor_base", probe_scenarios(base, labels))
    _run_baselines(cfg, data, scen, labels, mcfg, scored, times)
    bar.close()
    sizes = {a.name: a.meta.get("bytes") for a in load_adapters(model_dir)}
    extra = _extra_md(sizes, times)
    out_dir = Path(out_dir)
    preset = cfg.preset or config.get("pretrain", {}).get("preset")
    with atomic_dir(out_dir) as tmp:
        metrics = write_metrics(tmp, data.manifest.get("input", str(data.root)), names, results)
        scores_frame(results, labels).to_parquet(tmp / SCORES_FILE, index=False)
        v = verdict(
            metrics, results, preset, random_parts(mcfg), cfg.bootstrap_resamples, cfg.runtime.seed
        )
        # The settings (precision, seed, cache) the gate re-scores the served model with.
        add_details(tmp, verdict=v, config=to_dict(cfg))
        write_report(tmp, metrics, results, extra, verdict=v)
    return out_dir


def _run_baselines(
    cfg: EvalConfig, data, scen: list, labels: pd.DataFrame, mcfg: dict, scored, times: dict
) -> None:
    """Score each baseline of ``cfg.baselines`` (``scored(name, results)``), in a fixed order.

    The text baselines encode with the model's own event encoder and caps; ``llm_untrained``
    reads the model's own backbone, untrained.
    """
    from qanchor.eval.bag_baselines import tfidf_lr
    from qanchor.eval.baselines import (
        gbdt_features,
        text_mean_pool_features,
        text_mean_pool_recent_features,
    )
    from qanchor.eval.llm_baseline import llm_untrained_features
    from qanchor.eval.probe import probe_scenarios

    if "tfidf_lr" in cfg.baselines:
        scored("tfidf_lr", tfidf_lr(data.root, seed=cfg.runtime.seed))
    if "gbdt_features" in cfg.baselines:
        scored("gbdt_features", gbdt_features(data.root, seed=cfg.runtime.seed))
    enc = {"encoder": mcfg["encoder"], "max_length": mcfg["encoder_max_length"]}
    if "text_mean_pool" in cfg.baselines:
        scored("text_mean_pool", probe_scenarios(text_mean_pool_features(data.root, **enc), labels))
    if "text_mean_pool_recent" in cfg.baselines:
        feats = text_mean_pool_recent_features(
            data.root, per_source=mcfg["events_per_source"], caps=mcfg["source_caps"], **enc
        )
        scored("text_mean_pool_recent", probe_scenarios(feats, labels))
    if "llm_untrained" in cfg.baselines:
        t0 = time.perf_counter()
        feats = llm_untrained_features(mcfg["backbone"], mcfg["backbone_layers"], data.snapshots,
                                       {s.name: s.query for s in scen}, cfg.llm_per_source, cfg.llm_max_prefix_tokens, bf16=cfg.runtime.bf16)  # fmt: skip
        times["llm_untrained_s"] = round(time.perf_counter() - t0, 1)
        scored("llm_untrained", probe_scenarios(feats, labels))


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

    data = BuiltData.load(built_dir, cfg.runtime.feature_repo)
    scen = read_scenarios(data.root / "scenarios.yaml")
    labels = pd.read_parquet(data.root / "labels.parquet")
    tuned, _, info = qanchor_features(
        Path(model_dir), data, scen, cfg.runtime.cache_mb, cfg.runtime.bf16, base=False
    )
    # The probe's default seed, as evaluate() uses: the same model gives the same scores.
    return probe_scenarios(tuned, labels), info["bare_query_scenarios"]


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
