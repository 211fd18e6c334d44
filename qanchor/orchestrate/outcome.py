"""What a retraining run produced and decided, for the person who reads it (the notify task).

summary = announce("runs/airflow/<run id>", smtp)   # prints it, writes summary.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qanchor.io import atomic_write_json
from qanchor.orchestrate.rundir import RunPaths


def summarize(run: str | Path) -> dict:
    """What the run produced and decided, from the recorded stage results (for notifications)."""
    p = RunPaths(Path(run))
    out: dict[str, Any] = {"run": str(p.root)}
    for stage in ("build", "evaluate", "gate", "register"):
        path = p.result(stage)
        out[stage] = json.loads(path.read_text()) if path.is_file() else None
    out["metrics"] = str(p.eval / "metrics.json")
    out["report"] = str(p.eval / "report.md")
    return out


def announce(run: str | Path, smtp=None) -> dict:
    """Print the run's outcome (the Airflow task log and ``make run`` show it); write summary.json.

    With ``smtp`` (:class:`qanchor.monitoring.alert.SmtpSettings`) a rejection by the gate is
    also e-mailed (:func:`qanchor.orchestrate.notice.rejection_message`).
    """
    summary = summarize(run)
    gate_result, reg = summary["gate"] or {}, summary["register"] or {}
    if reg.get("registered"):
        outcome = f"registered and promoted {reg['tag']}"
    elif gate_result:
        outcome = f"not registered: {gate_result.get('reason')}"
    else:
        outcome = "stopped before the quality gate"
    lines = [f"qanchor retraining run {summary['run']}", f"gate: {gate_result.get('reason', '-')}",
             f"outcome: {outcome}", f"metrics: {summary['metrics']}", f"report:  {summary['report']}"]  # fmt: skip
    print("\n".join(lines), flush=True)
    emailed = False
    if smtp is not None and gate_result and not gate_result.get("passed"):
        from qanchor.monitoring.alert import send_email
        from qanchor.orchestrate.notice import rejection_message

        send_email(smtp, *rejection_message(summary))
        emailed = True
    summary |= {"outcome": outcome, "emailed": emailed}
    atomic_write_json(RunPaths(Path(run)).root / "summary.json", summary)
    return summary
