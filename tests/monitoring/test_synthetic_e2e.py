"""End to end on the synthetic generator's behaviour shift: ``qanchor drift`` e-mails a real SMTP
server (aiosmtpd on 127.0.0.1) for the shifted dataset and stays silent for an unshifted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qanchor.cli import main

THRESHOLDS = Path(__file__).resolve().parents[2] / "monitoring" / "drift.yaml"
# Sources the generator's shift changes: more mini-program sessions, inflated bill amounts.
SHIFTED_FEATURES = ["miniprogram__count", "miniprogram__count_30d", "bill__value_mean"]


def _drift(data: dict[str, Path], current: str, out: Path, *extra: str) -> dict:
    argv = ["drift", "--reference", str(data["reference"]), "--current", str(data[current]),
            "--out", str(out), "--preset", "tiny", "--config", str(THRESHOLDS), *extra]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())


def test_shifted_dataset_alerts_and_unshifted_does_not(
    drift_data: dict[str, Path], smtp_env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    calm = _drift(drift_data, "stationary", tmp_path / "runs" / "calm", "--smtp", "env")
    assert not calm["drift_detected"]
    assert calm["features"]["drift_share"] < calm["features"]["threshold_share"]
    assert smtp_env.messages == []
    assert "e-mail:  not sent (no drift)" in capsys.readouterr().out

    ws = tmp_path / "workspace"
    shifted = _drift(
        drift_data, "shifted", tmp_path / "runs" / "shift", "--smtp", "env", "--workspace", str(ws)
    )
    assert shifted["drift_detected"] and shifted["features"]["drifted"]
    for col in SHIFTED_FEATURES:
        assert f"feature:{col}" in shifted["drifted_items"]
    (msg,) = smtp_env.messages
    assert msg["From"] == "qanchor-drift@example.org"
    assert msg["To"] == "oncall@example.org, ml@example.org"
    assert msg["Subject"].startswith("[qanchor] drift detected: ")
    html = msg.get_body(("html",)).get_content()
    for col in SHIFTED_FEATURES:
        assert f"<td>{col}</td>" in html
    assert shifted["reports"]["index"] in html
    # The alert state sits beside the runs; the next identical run sends nothing.
    assert (
        json.loads((tmp_path / "runs" / "alert_state.json").read_text())["signature"]
        == shifted["signature"]
    )
    _drift(drift_data, "shifted", tmp_path / "runs" / "shift2", "--smtp", "env")
    assert len(smtp_env.messages) == 1
    assert "not sent (same drift already alerted" in capsys.readouterr().out
    _assert_in_workspace(ws, shifted)


def _assert_in_workspace(ws: Path, summary: dict) -> None:
    """The run is in the local Evidently workspace that `make monitor-ui` serves."""
    from evidently.ui.workspace import Workspace

    (project,) = Workspace(str(ws)).search_project("qanchor drift")
    runs = Workspace(str(ws)).list_runs(project.id)
    assert [str(r) for r in runs] == list(summary["workspace"]["runs"].values())
    # Per part, the last run's drift share as a number and every run's as a bar (an axis from 0:
    # a line through a single run had a one-value axis labelled "0").
    panels = project.dashboard.model().panels
    assert [p.plot_params["plot_type"] for p in panels] == ["counter", "bar", "counter", "bar"]
    for p in panels:
        (value,) = p.values
        assert value.metric.endswith("DriftedColumnsCount") and value.metric_labels == {
            "value_type": "share"
        }
