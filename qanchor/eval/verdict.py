"""The verdict that opens report.md: who wins, by how much, and how sure we are.

The winner is the model with the best mean AUC. If it is one of ours, the margin is over the
best baseline; if a baseline wins, the margin is how far the best qanchor model trails it. The
margin carries a paired bootstrap 95% interval over test users
(:func:`qanchor.eval.metrics.paired_bootstrap`), and the line names the preset and warns when
the models are random (the ``tiny`` backbone or encoder of tests). Example::

    v = verdict(metrics, results, preset="small", random_parts=[])
    v["line"]   # "**Verdict:** `qanchor_tuned` wins with mean AUC 0.8123, 0.0150 ahead of ..."
"""

from __future__ import annotations

from collections.abc import Mapping

from qanchor.eval.metrics import paired_bootstrap
from qanchor.eval.probe import Result
from qanchor.eval.report import ordered_models

QANCHOR_MODELS = ("qanchor_tuned", "qanchor_base")


def _best(metrics: dict, names: list[str]) -> str | None:
    """The name with the highest mean AUC; ties go to the earlier one in report order."""
    ranked = ordered_models(names)
    return max(ranked, key=lambda m: metrics["models"][m]["mean_auc"]) if ranked else None


def _scored(metrics: dict, result: Result, name: str) -> dict:
    """The scenarios of ``result`` that metrics.json scored for ``name`` (AUC defined)."""
    return {s: result[s] for s in metrics["models"][name]["per_scenario"] if s in result}


def verdict(
    metrics: dict,
    results: Mapping[str, Result],
    preset: str | None,
    random_parts: list[str],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """The verdict as a dict (for eval_details.json) with its Markdown ``line``.

    Args:
        metrics: what :func:`qanchor.eval.report.write_metrics` returned.
        results: model key -> scenario -> (y_test, scores), rows in the labels' test order.
        preset: the evaluation preset (None: the config defaults).
        random_parts: which parts of the model are random, e.g. ``["backbone `tiny`"]``;
            non-empty adds a warning.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"winner", "winner_mean_auc", "compared", "compared_mean_auc", "margin",
        "ci95", "bootstrap", "preset", "random_models", "line"}``; ``compared`` and the
        fields after it up to ``bootstrap`` are None when there is nothing to compare with.
        ``margin`` is the paired difference over the scenarios both models scored (the
        difference of their metrics.json means when, as usual, they scored the same ones).
    """
    names = list(metrics["models"])
    out: dict = {"winner": None, "winner_mean_auc": None, "compared": None,
                 "compared_mean_auc": None, "margin": None, "ci95": None, "bootstrap": None,
                 "preset": preset, "random_models": list(random_parts)}  # fmt: skip
    winner = _best(metrics, names)
    if winner is None:
        out["line"] = _line(out)
        return out
    ours = winner in QANCHOR_MODELS
    other = _best(metrics, [m for m in names if (m in QANCHOR_MODELS) != ours])
    out |= {"winner": winner, "winner_mean_auc": metrics["models"][winner]["mean_auc"]}
    if other is not None:
        boot = paired_bootstrap(_scored(metrics, results[winner], winner),
                                _scored(metrics, results[other], other), n_boot, seed)  # fmt: skip
        out |= {"compared": other, "compared_mean_auc": metrics["models"][other]["mean_auc"],
                "margin": boot["diff"], "ci95": [boot["low"], boot["high"]],
                "bootstrap": boot}  # fmt: skip
    out["line"] = _line(out)
    return out


def _line(v: dict) -> str:
    """The verdict paragraph of report.md (one line, plus a warning line if random)."""
    preset = f"Preset `{v['preset']}`." if v["preset"] else "Preset: none (config defaults)."
    if v["winner"] is None:
        text = f"**Verdict:** no model could be scored. {preset}"
    else:
        ours = v["winner"] in QANCHOR_MODELS
        text = f"**Verdict:** `{v['winner']}` wins with mean AUC {v['winner_mean_auc']:.4f}"
        if v["compared"] is None:
            text += f"; no {'baseline' if ours else 'qanchor model'} was scored to compare with."
        else:
            boot, (low, high) = v["bootstrap"], v["ci95"]
            if ours:
                text += f", {v['margin']:.4f} ahead of the best baseline `{v['compared']}`"
            else:
                text += (f"; the best qanchor model `{v['compared']}` trails it by "
                         f"{v['margin']:.4f}")  # fmt: skip
            text += (f" ({v['compared_mean_auc']:.4f}); 95% CI of the margin [{low:.4f}, "
                     f"{high:.4f}] (paired bootstrap over test users, {boot['n_boot']} "
                     f"resamples, {len(boot['scenarios'])} scenarios)")  # fmt: skip
            text += ", which includes 0: no clear winner." if low <= 0 <= high else "."
        text += f" {preset}"
    if v["random_models"]:
        text += (f"\n\n> **Warning: random models** ({', '.join(v['random_models'])}): the "
                 "`tiny` test models have random weights, so these numbers say nothing about "
                 "the method.")  # fmt: skip
    return text
