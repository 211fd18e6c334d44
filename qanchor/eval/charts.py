"""PNG charts of the evaluation report: AUC/KS bars per scenario and ROC curves per scenario.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing changes the
process-wide backend and no display is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qanchor.eval.metrics import auc_ks, roc_points
from qanchor.eval.probe import Result

ROC_COLUMNS = 4


def _colors(models: list[str]) -> dict[str, tuple]:
    """One colour per model, the same in every chart."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(models)}


def _save(fig, path: Path, dpi: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)


def bar_chart(metrics: dict, models: list[str], key: str, path: Path) -> None:
    """Grouped bars of ``key`` ("auc" or "ks") per scenario and model, plus the models' means."""
    from matplotlib.figure import Figure

    groups = [*metrics["scenarios"], "MEAN"]
    x, width = np.arange(len(groups)), 0.8 / max(len(models), 1)
    fig = Figure(figsize=(max(8.0, 0.8 * len(groups) + 2), 4.8))
    ax = fig.add_subplot()
    colors = _colors(models)
    for i, m in enumerate(models):
        entry = metrics["models"][m]
        vals = [entry["per_scenario"].get(s, {}).get(key, np.nan) for s in groups[:-1]]
        vals.append(entry[f"mean_{key}"])
        offset = (i - (len(models) - 1) / 2) * width
        ax.bar(x + offset, vals, width, label=m, color=colors[m])
    if key == "auc":
        aucs = [v["auc"] for e in metrics["models"].values() for v in e["per_scenario"].values()]
        low = min([0.5, *aucs])
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")  # chance level
    else:
        ax.set_ylim(0.0, 1.0)
    ax.axvline(len(groups) - 1.5, color="grey", lw=0.6)  # separates the means
    ax.set_xticks(x, groups, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(key.upper())
    ax.set_title(f"{key.upper()} per scenario (test split)")
    ax.grid(axis="y", alpha=0.3)
    # Outside the axes, so it never hides a bar near 1.0.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    _save(fig, path, dpi=110)


def roc_grid(results: dict[str, Result], scenarios: list[str], path: Path) -> None:
    """ROC curves of every model, one panel per scenario, AUC in each legend entry."""
    from matplotlib.figure import Figure

    cols = min(ROC_COLUMNS, max(len(scenarios), 1))
    rows = max(math.ceil(len(scenarios) / cols), 1)
    fig = Figure(figsize=(3.4 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = _colors(list(results))
    for ax, scenario in zip(axes, scenarios, strict=False):
        for m, result in results.items():
            if scenario not in result:
                continue
            try:
                fpr, tpr = roc_points(*result[scenario])
                auc, _ = auc_ks(*result[scenario])
            except ValueError:  # one-class test set: no curve to draw
                continue
            ax.plot(fpr, tpr, lw=1.2, color=colors[m], label=f"{m} {auc:.3f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
        ax.set_title(scenario, fontsize=9)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower right")
    for ax in axes[len(scenarios) :]:
        ax.axis("off")
    fig.supxlabel("false positive rate", fontsize=9)
    fig.supylabel("true positive rate", fontsize=9)
    _save(fig, path, dpi=100)
