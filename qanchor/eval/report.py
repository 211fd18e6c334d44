"""metrics.json (DESIGN.md section 4), eval_details.json, and a Markdown report with charts.

Example::

    metrics = write_metrics(out, "data/synthetic", scenarios, results)
    write_report(out, metrics, results, extra_md="## Timings\n...", verdict=v)  # out/report.md
    add_details(out, verdict=v)                                        # into eval_details.json

``results`` maps a model key to ``scenario -> (y_test, scores)`` (what
:func:`qanchor.eval.probe.probe_scenarios` and :func:`qanchor.eval.baselines.gbdt_features`
return).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from qanchor.eval.charts import bar_chart, roc_grid
from qanchor.eval.metrics import auc_ks
from qanchor.eval.probe import Result

log = logging.getLogger(__name__)

# Our two models first, then the baselines (DESIGN.md section 4), tfidf_lr first: it is the
# bar on real logs. Other keys follow.
MODEL_ORDER = ("qanchor_tuned", "qanchor_base", "tfidf_lr", "gbdt_features", "text_mean_pool",
               "text_mean_pool_recent", "llm_untrained")  # fmt: skip
ORDER = MODEL_ORDER
CHARTS = {"auc": "auc_bars.png", "ks": "ks_bars.png", "roc": "roc_curves.png"}


def ordered_models(models: Iterable[str]) -> list[str]:
    """Model keys in :data:`MODEL_ORDER`, unknown keys after in their given order."""
    models = list(models)
    return [m for m in MODEL_ORDER if m in models] + [m for m in models if m not in MODEL_ORDER]


def _score_model(
    result: Result, scenarios: list[str]
) -> tuple[dict[str, dict], dict[str, dict], dict[str, str]]:
    """One model's (per-scenario AUC/KS, per-scenario test counts, skipped -> reason)."""
    per, counts = {}, {}
    skipped = dict(getattr(result, "skipped", {}))  # ProbeResults carry their reasons
    for s in scenarios:
        if s not in result:
            skipped.setdefault(s, "not evaluated")
            continue
        y, scores = result[s]
        try:
            auc, ks = auc_ks(y, scores)
        except ValueError as exc:  # e.g. a caller that did not skip a one-class test set
            skipped[s] = str(exc)
            continue
        per[s] = {"auc": auc, "ks": ks}
        y = np.asarray(y)
        counts[s] = {"n_test": int(len(y)), "positives": int((y == y.max()).sum())}
    return per, counts, {s: r for s, r in skipped.items() if s in scenarios}


def write_metrics(
    out_dir: str | Path, dataset: str, scenarios: list[str], results: dict[str, Result]
) -> dict:
    """Write ``metrics.json`` in exactly the DESIGN.md section 4 schema, and ``eval_details.json``.

    Means are over the scenarios a model was scored on. Test sizes, positives and skipped
    scenarios (with reasons) go to ``eval_details.json`` so metrics.json keeps its schema. A
    model scored on no scenario at all is left out of metrics.json (a mean of nothing is not
    a number) and noted in the details.

    Args:
        out_dir: directory to write into (created if missing).
        dataset: the dataset's name or input path.
        scenarios: all scenarios of the dataset, in report order.
        results: model key -> scenario -> (y_test, scores).

    Returns:
        The metrics dict as written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict] = {}
    details: dict = {"dataset": dataset, "models": {}}
    for name in ordered_models(results):
        per, counts, skipped = _score_model(results[name], scenarios)
        extra = [s for s in results[name] if s not in scenarios]
        if extra:
            log.warning("%s: results for unknown scenarios %s ignored", name, extra)
        details["models"][name] = {"per_scenario": counts, "skipped": skipped, "ignored": extra}
        if not per:
            log.warning("%s: no scenario could be scored; left out of metrics.json", name)
            details["models"][name]["left_out"] = "no scenario could be scored"
            continue
        models[name] = {
            "mean_auc": float(np.mean([v["auc"] for v in per.values()])),
            "mean_ks": float(np.mean([v["ks"] for v in per.values()])),
            "per_scenario": per,
        }
    metrics = {"dataset": str(dataset), "scenarios": list(scenarios), "models": models}
    # allow_nan=False: a NaN would make metrics.json invalid JSON for strict readers.
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    (out_dir / "eval_details.json").write_text(json.dumps(details, indent=2) + "\n")
    return metrics


def _cell(value: float | None, best: float | None) -> str:
    if value is None:
        return "–"
    text = f"{value:.4f}"
    return f"**{text}**" if best is not None and np.isclose(value, best) else text


def _summary(metrics: dict) -> list[str]:
    ranked = sorted(metrics["models"].items(), key=lambda kv: -kv[1]["mean_auc"])
    best_auc = max(v["mean_auc"] for _, v in ranked)
    best_ks = max(v["mean_ks"] for _, v in ranked)
    n = len(metrics["scenarios"])
    lines = ["| model | mean AUC | mean KS | scenarios |", "|---|---:|---:|---:|"]
    for name, v in ranked:
        auc, ks = _cell(v["mean_auc"], best_auc), _cell(v["mean_ks"], best_ks)
        lines.append(f"| `{name}` | {auc} | {ks} | {len(v['per_scenario'])}/{n} |")
    return lines


def _test_sizes(results: dict[str, Result]) -> dict[str, str]:
    """scenario -> "n (positives)" of its test set, from any model that scored it."""
    sizes = {}
    for result in results.values():
        for s, (y, _) in result.items():
            y = np.asarray(y)
            sizes.setdefault(s, f"{len(y)} ({int((y == y.max()).sum()) if len(y) else 0})")
    return sizes


def _per_scenario(metrics: dict, key: str, sizes: dict[str, str]) -> list[str]:
    """Scenario rows x model columns of ``key`` (auc or ks), the best per row in bold."""
    models = ordered_models(metrics["models"])
    lines = ["| scenario | " + " | ".join(models) + " | test n (pos) |"]
    lines.append("|---|" + "---:|" * (len(models) + 1))
    for s in metrics["scenarios"]:
        vals = [metrics["models"][m]["per_scenario"].get(s, {}).get(key) for m in models]
        best = max((v for v in vals if v is not None), default=None)
        cells = " | ".join(_cell(v, best) for v in vals)
        lines.append(f"| {s} | {cells} | {sizes.get(s, '–')} |")
    return lines


def _skipped(metrics: dict, results: dict[str, Result]) -> list[str]:
    lines = []
    for name in ordered_models(results):
        reasons = getattr(results[name], "skipped", {})
        scored = metrics["models"].get(name, {}).get("per_scenario", {})
        for s in metrics["scenarios"]:
            if s not in scored:
                lines.append(f"- `{name}` / {s}: {reasons.get(s, 'not scored')}")
    return lines


def add_details(out_dir: str | Path, **entries) -> None:
    """Add top-level entries (e.g. the verdict) to the ``eval_details.json`` of ``out_dir``."""
    path = Path(out_dir) / "eval_details.json"
    details = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps(details | entries, indent=2) + "\n")


def write_report(
    out_dir: str | Path,
    metrics: dict,
    results: dict[str, Result],
    extra_md: str = "",
    verdict: dict | None = None,
) -> Path:
    """Write ``report.md`` with summary and per-scenario tables and three PNG charts.

    Args:
        out_dir: directory holding (or receiving) metrics.json; charts are written beside.
        metrics: what :func:`write_metrics` returned.
        results: model key -> scenario -> (y_test, scores), for the ROC curves.
        extra_md: Markdown appended at the end (adapter sizes, timings, ...).
        verdict: what :func:`qanchor.eval.verdict.verdict` returned; its line opens the
            report, right under the title.

    Returns:
        Path of ``report.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models, scenarios = ordered_models(metrics["models"]), metrics["scenarios"]
    bar_chart(metrics, models, "auc", out_dir / CHARTS["auc"])
    bar_chart(metrics, models, "ks", out_dir / CHARTS["ks"])
    roc_grid({m: results[m] for m in models if m in results}, scenarios, out_dir / CHARTS["roc"])
    sizes = _test_sizes(results)
    parts = [
        f"# Evaluation report: {Path(str(metrics['dataset'])).name}",
        _about(out_dir, metrics, verdict),
    ]
    if verdict is not None:
        parts.append(verdict["line"])
    parts += [
        f"{len(scenarios)} scenarios, {len(models)} models. Every embedding is scored by the "
        "same linear probe per scenario (standardised logistic regression, trained on train+val "
        "users, scored on test users); `tfidf_lr` is a logistic regression on the TF-IDF bag of "
        "each user's whole-history event texts; `gbdt_features` is LightGBM on activity "
        "aggregates and the profile; `text_mean_pool` averages event-encoder vectors over the "
        "whole history, `text_mean_pool_recent` over the capped recent events the model's event "
        "tokens read. KS = max(TPR − FPR) over the ROC curve.",
        "## Summary (sorted by mean AUC)",
        "\n".join(_summary(metrics)) if models else "No model could be scored.",
        "## AUC per scenario",
        "\n".join(_per_scenario(metrics, "auc", sizes)),
        f"![AUC per scenario]({CHARTS['auc']})",
        "## KS per scenario",
        "\n".join(_per_scenario(metrics, "ks", sizes)),
        f"![KS per scenario]({CHARTS['ks']})",
        "## ROC curves (test split)",
        f"![ROC curves per scenario]({CHARTS['roc']})",
    ]
    if skipped := _skipped(metrics, results):
        parts += ["## Skipped scenarios", "\n".join(skipped)]
    if extra_md.strip():
        parts.append(extra_md.strip())
    path = out_dir / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def _about(out_dir: Path, metrics: dict, verdict: dict | None) -> str:
    """The line under the title: data (name and where it came from), preset, run id."""
    items = [f"Data `{Path(str(metrics['dataset'])).name}`"]
    if verdict is not None and verdict.get("preset"):
        items.append(f"preset `{verdict['preset']}`")
    run = out_dir.resolve().parent
    if (run / "built").is_dir() or (run / "model").is_dir():  # eval/ inside a run directory
        items.append(f"run `{run.name}`")
    return " · ".join(items) + f" (input: `{metrics['dataset']}`)."
