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


def _new_project(ws: Any, name: str) -> Any:
    """A project whose dashboard plots the drift shares of every run over time."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    proj = ws.create_project(
        name, description="Daily drift of qanchor's inputs, embeddings and scores"
    )
    for tag, title in (("features", "Share of drifted input features"),
                       ("model", "Share of scenarios whose score distribution drifted")):  # fmt: skip
        proj.dashboard.add_panel(
            line_plot_panel(
                title=title,
                values=[
                    PanelMetric(
                        legend="share",
                        metric="DriftedColumnsCount",
                        tags=[tag],
                        metric_labels={"value_type": "share"},
                    )
                ],  # fmt: skip
            ),
            tab="Drift",
        )
    return proj
