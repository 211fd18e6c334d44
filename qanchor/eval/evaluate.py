"""Evaluate a tuned model against its base and the baselines; write metrics.json and a report.

    qanchor evaluate --model runs/model --data data/built --out runs/eval --preset small

Every model's features go through the same linear probe per scenario (trained on train+val
users, scored on test users), so the comparison isolates the representations.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qanchor.config import option

log = logging.getLogger(__name__)

MODELS = ("qanchor_tuned", "qanchor_base", "gbdt_features", "text_mean_pool", "llm_untrained")


@dataclass
class EvalConfig:
    """Settings of ``qanchor evaluate``."""

    baselines: list[str] = option(
        ["gbdt_features", "text_mean_pool", "llm_untrained"], "baselines to run"
    )
    llm_per_source: int = option(3, "events per source in the llm_untrained text")
    llm_max_prefix_tokens: int = option(192, "token cap of the llm_untrained events text")
    cache_mb: int = option(2048, "prefix KV cache budget while embedding (MB)")
    seed: int = option(0, "probe and GBDT seed")
    bf16: str = option("auto", "bf16 autocast of the LLM passes: auto (where native), on, off")
    feature_repo: str | None = option(
        None, "Feast repo to read user snapshots from (None: the build's snapshots.parquet)"
    )

    PRESETS = {
        "tiny": {"llm_per_source": 2, "llm_max_prefix_tokens": 64, "bf16": "off"},
        "small": {},
        "paper": {"llm_per_source": 10, "llm_max_prefix_tokens": 1024},
    }


def qanchor_features(
    model_dir: Path, data, names: list[str], cache_mb: int, bf16: str = "off"
) -> tuple[dict, dict, dict]:
    """Per-scenario embedding frames with and without the tuned prompts, and timings."""
    from qanchor.infer.engine import Embedder

    emb = Embedder.from_dir(model_dir, cache_bytes=cache_mb << 20, bf16=bf16)
    users = sorted(set(data.users["user_id"]))
    emb.load_users(data.snapshots[data.snapshots["user_id"].isin(users)], data.profiles)
    times = {}
    t0 = time.perf_counter()
    tuned = emb.embed(users, names, tuned=True)
    times["qanchor_tuned_embed_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    base = emb.embed(users, names, tuned=False)
    times["qanchor_base_embed_s"] = round(time.perf_counter() - t0, 1)
    idx = pd.Index(users, name="user_id")

    def frames(x) -> dict[str, pd.DataFrame]:
        return {s: pd.DataFrame(x[:, j], index=idx) for j, s in enumerate(names)}

    return frames(tuned), frames(base), times | {"prefix_cache": emb.cache.stats()}


def evaluate(
    model_dir: str | Path, built_dir: str | Path, out_dir: str | Path, cfg: EvalConfig
) -> Path:
    """Run every model and baseline; returns the directory holding metrics.json and report.md."""
    from qanchor.data.contract import read_scenarios
    from qanchor.eval.baselines import gbdt_features, text_mean_pool_features
    from qanchor.eval.llm_baseline import llm_untrained_features
    from qanchor.eval.probe import probe_scenarios
    from qanchor.eval.report import write_metrics, write_report
    from qanchor.io import atomic_dir
    from qanchor.model.artifact import read_config
    from qanchor.model.data import BuiltData
    from qanchor.tune.adapters import load_adapters

    model_dir, data = Path(model_dir), BuiltData.load(built_dir, cfg.feature_repo)
    scen = read_scenarios(data.root / "scenarios.yaml")
    names = [s.name for s in scen]
    labels = pd.read_parquet(data.root / "labels.parquet")
    mcfg = read_config(model_dir)["model"]
    results, times = {}, {}
    tuned, base, times = qanchor_features(model_dir, data, names, cfg.cache_mb, cfg.bf16)
    results["qanchor_tuned"] = probe_scenarios(tuned, labels)
    results["qanchor_base"] = probe_scenarios(base, labels)
    if "gbdt_features" in cfg.baselines:
        results["gbdt_features"] = gbdt_features(data.root, seed=cfg.seed)
    if "text_mean_pool" in cfg.baselines:
        feats = text_mean_pool_features(
            data.root,
            encoder=mcfg["encoder"],
            per_source=mcfg["events_per_source"],
            caps=mcfg["source_caps"],
            max_length=mcfg["encoder_max_length"],
        )
        results["text_mean_pool"] = probe_scenarios(feats, labels)
    if "llm_untrained" in cfg.baselines:
        t0 = time.perf_counter()
        feats = llm_untrained_features(mcfg["backbone"], mcfg["backbone_layers"], data.snapshots,
                                       {s.name: s.query for s in scen}, cfg.llm_per_source, cfg.llm_max_prefix_tokens, bf16=cfg.bf16)  # fmt: skip
        times["llm_untrained_s"] = round(time.perf_counter() - t0, 1)
        results["llm_untrained"] = probe_scenarios(feats, labels)
    sizes = {a.name: a.meta.get("bytes") for a in load_adapters(model_dir)}
    extra = _extra_md(sizes, times)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        metrics = write_metrics(tmp, data.manifest.get("input", str(data.root)), names, results)
        write_report(tmp, metrics, results, extra)
    return out_dir


def _extra_md(sizes: dict, times: dict) -> str:
    lines = ["## Scenario adapters", "", "| scenario | adapter bytes |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(sizes.items())]
    lines += ["", "## Timings", "", "| what | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in times.items()]
    return "\n".join(lines) + "\n"
