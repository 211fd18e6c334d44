"""Tables of the quality benchmark: pure functions of the collected ``metrics.json`` dicts.

A *run* is ``{"dataset", "seed", "wall_s", "bf16", "metrics"}`` with ``metrics`` as
``qanchor evaluate`` writes it; a *variant* is ``{"preset", "overrides", "runs"}`` under a tag.
Nothing here reads files or runs models, so the aggregation is tested on made-up metrics.
"""

from __future__ import annotations

import statistics
from typing import Any

TUNED = "qanchor_tuned"


def mean_sd(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None below two values) and count."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def _datasets(runs: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["dataset"] for r in runs))


def _paired_diff(by_model: dict[str, dict[int, dict]], best: str | None) -> dict | None:
    """``qanchor_tuned`` minus ``best`` per seed (mean AUC and KS), over the seeds both have."""
    if not best or TUNED not in by_model:
        return None
    t, b = by_model[TUNED], by_model[best]
    paired = sorted(set(t) & set(b))
    if not paired:
        return None
    return {"auc": mean_sd([t[s]["mean_auc"] - b[s]["mean_auc"] for s in paired]),
            "ks": mean_sd([t[s]["mean_ks"] - b[s]["mean_ks"] for s in paired])}  # fmt: skip


def summarize_dataset(runs: list[dict]) -> dict[str, Any]:
    """Over the seeds of one dataset: each model's AUC/KS, per-scenario AUC, tuned vs best baseline.

    Models are ordered by mean AUC, best first. The best baseline is the non-qanchor model with
    the highest mean AUC; its difference to ``qanchor_tuned`` is paired by seed, so what a seed
    shares between models (its user split, hence its test users) cancels out of the spread.
    """
    runs = sorted(runs, key=lambda r: r["seed"])
    by_model: dict[str, dict[int, dict]] = {}  # model -> seed -> its metrics
    for run in runs:
        for model, m in run["metrics"]["models"].items():
            by_model.setdefault(model, {})[run["seed"]] = m
    models = {
        model: {"auc": mean_sd([m["mean_auc"] for m in seeds.values()]),
                "ks": mean_sd([m["mean_ks"] for m in seeds.values()])}
        for model, seeds in by_model.items()
    }  # fmt: skip
    order = sorted(models, key=lambda m: -models[m]["auc"]["mean"])
    scenarios = list(dict.fromkeys(s for r in runs for s in r["metrics"]["scenarios"]))
    per_scenario = {
        s: {model: statistics.fmean(v) for model in order
            if (v := [m["per_scenario"][s]["auc"] for m in by_model[model].values()
                      if s in m["per_scenario"]])}
        for s in scenarios
    }  # fmt: skip
    best = next((m for m in order if not m.startswith("qanchor_")), None)
    return {"seeds": [r["seed"] for r in runs], "order": order, "models": models,
            "per_scenario": per_scenario, "best_baseline": best,
            "tuned_minus_best": _paired_diff(by_model, best), "wall_s": [r.get("wall_s") for r in runs],
            "bf16": sorted({r.get("bf16") for r in runs}, key=str)}  # fmt: skip


def summarize(variants: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """tag -> dataset -> :func:`summarize_dataset`."""
    return {
        tag: {ds: summarize_dataset([r for r in v["runs"] if r["dataset"] == ds])
              for ds in _datasets(v["runs"])}
        for tag, v in variants.items()
    }  # fmt: skip


def fmt(stat: dict | None, signed: bool = False) -> str:
    """``0.7469 ± 0.0040``; ``–`` for the spread of a single seed."""
    if stat is None:
        return "–"
    mean = f"{stat['mean']:+.4f}" if signed else f"{stat['mean']:.4f}"
    return f"{mean} ± {stat['sd']:.4f}" if stat["sd"] is not None else f"{mean} ± –"


def _yes_no(flags: list) -> str:
    return {(True,): "on", (False,): "off"}.get(tuple(flags), "mixed/unknown")


def dataset_section(name: str, s: dict) -> list[str]:
    """Main table, paired difference and per-scenario AUC of one dataset."""
    walls = ", ".join(f"{w:.0f} s" for w in s["wall_s"] if w is not None) or "–"
    lines = [f"### {name}", "",
             f"{len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}); wall time per run: "
             f"{walls}; bf16 autocast: {_yes_no(s['bf16'])}.", "",
             "| model | mean AUC | mean KS | seeds |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {m} | {fmt(s['models'][m]['auc'])} | {fmt(s['models'][m]['ks'])} | "
              f"{s['models'][m]['auc']['n']} |" for m in s["order"]]  # fmt: skip
    d = s["tuned_minus_best"]
    if d:
        lines += ["", f"Paired by seed, `{TUNED}` − `{s['best_baseline']}` (best baseline): "
                  f"AUC {fmt(d['auc'], signed=True)}, KS {fmt(d['ks'], signed=True)} "
                  f"over {d['auc']['n']} seeds."]  # fmt: skip
    lines += ["", "Mean AUC per scenario:", "",
              "| scenario | " + " | ".join(s["order"]) + " |",
              "|---" * (len(s["order"]) + 1) + "|"]  # fmt: skip
    for scen, aucs in s["per_scenario"].items():
        cells = (f"{aucs[m]:.4f}" if m in aucs else "–" for m in s["order"])
        lines.append(f"| {scen} | " + " | ".join(cells) + " |")
    return lines + [""]


def _variant_label(tag: str, v: dict) -> str:
    sets = [f"{stage}.{k}={val}" for stage, over in (v.get("overrides") or {}).items()
            for k, val in over.items()]  # fmt: skip
    return f"{tag} ({v['preset']}{': ' + ', '.join(sets) if sets else ''})"


def ablation_table(variants: dict[str, dict], summary: dict, main_tag: str) -> list[str]:
    """Mean AUC (seeds) per dataset and model, one column per tag, the main tag first."""
    tags = [main_tag, *sorted(t for t in variants if t != main_tag)]
    tags = [t for t in tags if t in variants]
    lines = ["| dataset | model | " + " | ".join(_variant_label(t, variants[t]) for t in tags) + " |",
             "|---|---" + "|---" * len(tags) + "|"]  # fmt: skip
    datasets = list(dict.fromkeys(ds for t in tags for ds in summary[t]))
    for ds in datasets:
        models = list(
            dict.fromkeys(m for t in tags if ds in summary[t] for m in summary[t][ds]["order"])
        )
        for model in models:
            cells = []
            for t in tags:
                st = summary[t].get(ds, {}).get("models", {}).get(model)
                cells.append(f"{st['auc']['mean']:.4f} ({st['auc']['n']})" if st else "–")
            lines.append(f"| {ds} | {model} | " + " | ".join(cells) + " |")
        cells = [fmt(summary[t][ds]["tuned_minus_best"]["auc"], signed=True)
                 if ds in summary[t] and summary[t][ds]["tuned_minus_best"] else "–" for t in tags]  # fmt: skip
        lines.append(f"| {ds} | {TUNED} − best baseline | " + " | ".join(cells) + " |")
    return lines


def render(variants: dict[str, dict], machine: dict, main_tag: str = "default") -> str:
    """The markdown of quality.md: main tables of ``main_tag``, then the ablation table."""
    summary = summarize(variants)
    if main_tag not in variants:
        main_tag = next(iter(variants))
    v = variants[main_tag]
    lines = ["## Quality over seeds: linear-probe AUC and KS on the test split", "",
             f"Machine: {machine.get('cpu_model', '?')}, {machine.get('threads', '?')} torch threads. "
             f"Variant `{_variant_label(main_tag, v)}`. Mean ± sample sd over seeds.", ""]  # fmt: skip
    for ds, s in summary[main_tag].items():
        lines += dataset_section(ds, s)
    if len(variants) > 1:
        lines += [
            "### Ablations: mean AUC (seeds)",
            "",
            *ablation_table(variants, summary, main_tag),
        ]
    return "\n".join(lines).rstrip()
