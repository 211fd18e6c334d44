"""Evidently plumbing: run a report, read drift results from its snapshot, save it, log it.

Evidently 0.7's ``Snapshot.dict()`` has no dataset-drift flag: the share of drifted columns comes
from the ``DriftedColumnsCount`` metric, and each column's decision from the test that its
``ValueDrift`` metric attaches (FAIL = drifted) when the report runs with ``include_tests``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

PROJECT = "qanchor drift"


def run_report(
    metrics: list[Any],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str] | None = None,
    tags: list[str] | None = None,
) -> Any:
    """Run an Evidently report of ``metrics`` on current vs reference; returns its snapshot."""
    from evidently import DataDefinition, Dataset, Report

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical or [])
    report = Report(metrics, include_tests=True, tags=tags or [])
    with warnings.catch_warnings():
        # Evidently's column statistics divide by zero on all-equal columns (harmless NaN ratios).
        warnings.simplefilter("ignore", RuntimeWarning)
        return report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


def column_drifts(snapshot: Any) -> dict[str, dict[str, Any]]:
    """Per column of every ``ValueDrift`` metric: score, method, threshold and the decision."""
    d = snapshot.dict()
    status = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in d.get("tests", [])
        if t["metric_config"]["params"].get("type", "").endswith(":ValueDrift")
    }
    out = {}
    for m in d["metrics"]:
        cfg = m["config"]
        if not cfg.get("type", "").endswith(":ValueDrift"):
            continue
        out[cfg["column"]] = {
            "score": float(m["value"]),
            "method": cfg.get("method"),
            "threshold": cfg.get("threshold"),
            "drifted": status.get(m["id"]) == "FAIL",
        }
    return out


def drifted_count(snapshot: Any) -> list[dict[str, Any]]:
    """Every ``DriftedColumnsCount`` result in order: ``{"count", "share", "columns"}``."""
    out = []
    for m in snapshot.dict()["metrics"]:
        if m["config"].get("type", "").endswith(":DriftedColumnsCount"):
            out.append(
                {
                    "count": int(m["value"]["count"]),
                    "share": float(m["value"]["share"]),
                    "columns": m["config"].get("columns"),
                }
            )
    return out


def save_html(snapshot: Any, path: str | Path) -> Path:
    """Write the report's self-contained HTML page."""
    path = Path(path)
    snapshot.save_html(str(path))
    return path


def add_to_workspace(
    workspace: str | Path, snapshots: dict[str, Any], project: str = PROJECT
) -> dict[str, Any]:
    """Add runs to a local Evidently workspace (created with a dashboard on first use).

    ``evidently ui --workspace DIR`` (``make monitor-ui``) then shows them under ``project``.

    Returns:
        ``{"path", "project", "project_id", "runs": {name: snapshot id}}``.
    """
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(workspace))
    found = ws.search_project(project)
    proj = found[0] if found else _new_project(ws, project)
    runs = {
        name: str(ws.add_run(proj.id, snap, include_data=False, name=name).id)
        for name, snap in snapshots.items()
    }
    return {"path": str(workspace), "project": project, "project_id": str(proj.id), "runs": runs}


# Per part of a run (its report's tag): the dashboard's title of the drift share.
PANELS = {
    "features": "Share of drifted input features",
    "model": "Share of scenarios whose score distribution drifted",
}


def _new_project(ws: Any, name: str) -> Any:
    """A project whose dashboard shows, per part, the last run's drift share and every run's."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, counter_panel

    proj = ws.create_project(
        name, description="Daily drift of qanchor's inputs, embeddings and scores"
    )
    for tag, title in PANELS.items():
        share = PanelMetric(legend="drift share (0-1)", metric="DriftedColumnsCount", tags=[tag],
                            metric_labels={"value_type": "share"})  # fmt: skip
        # The counter prints the number itself. Bars, not a line: a bar axis starts at 0, while a
        # line through one run has a one-value range that the UI labels "0" wherever the point is.
        # Evidently 0.7's counter prints a zero as "no value"; its description says so.
        counter = counter_panel(title=f"{title}: last run", values=[share], size="half",
                                description="'no value' here means 0: nothing drifted")  # fmt: skip
        proj.dashboard.add_panel(counter, tab="Drift")
        proj.dashboard.add_panel(
            bar_plot_panel(
                title=f"{title} per run",
                description="y: share of the monitored items that drifted (0-1); x: run time "
                "(UTC). The part counts as drifted from the share in monitoring/drift.yaml.",
                values=[share],
                size="half",
            ),
            tab="Drift",
        )
    return proj
