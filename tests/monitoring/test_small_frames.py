"""Drift and alerts on small in-memory frames: no drift -> no e-mail; a shift -> an e-mail naming it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qanchor.config import resolve
from qanchor.monitoring.alert import SmtpSettings, alert_on_drift, read_state
from qanchor.monitoring.config import DriftConfig
from qanchor.monitoring.features import feature_drift, split_columns
from qanchor.monitoring.job import run_drift

# Distance methods with their fixed effect-size thresholds (0.1): at 3000 rows the sampling noise
# of a normed Wasserstein distance is ~0.03, so the verdicts do not depend on the draw (a 5%
# p-value test would flag an unshifted column now and then).
CFG = resolve(
    DriftConfig, "tiny", overrides={"num_method": "wasserstein", "cat_method": "jensenshannon"}
)
ROWS = 3000
SHIFTED = ["a", "d", "e"]


def write_built(root: Path, frame: pd.DataFrame, profile_cols: list[str]) -> Path:
    """A minimal built-dataset directory (aggregates + profiles) from an in-memory frame."""
    root.mkdir(parents=True, exist_ok=True)
    frame = frame.assign(user_id=[f"u{i:05d}" for i in range(len(frame))])
    ts = pd.Timestamp("2026-04-01", tz="UTC")
    agg = frame.drop(columns=profile_cols).assign(snapshot_ts=ts)
    agg.to_parquet(root / "aggregates.parquet", index=False)
    frame[["user_id", *profile_cols]].assign(snapshot_ts=ts).to_parquet(
        root / "profiles.parquet", index=False
    )
    return root


def small_frame(rng: np.random.Generator, n: int = ROWS, shift: bool = False) -> pd.DataFrame:
    """Six columns of made-up features; ``shift`` moves three of them (a, d, e)."""
    return pd.DataFrame(
        {
            "a": rng.normal(1.0 if shift else 0.0, 1.0, n),
            "b": rng.normal(0.0, 1.0, n),
            "c": rng.exponential(3.0, n),
            "d": rng.poisson(9 if shift else 5, n).astype(float),
            "e": rng.choice(["x", "y", "z"], n, p=[0.2, 0.2, 0.6] if shift else [0.4, 0.4, 0.2]),
            "f": rng.lognormal(2.0, 1.0, n),
        }
    )


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("frames")
    return {
        "reference": write_built(root / "ref", small_frame(np.random.default_rng(0)), ["e"]),
        "same": write_built(root / "same", small_frame(np.random.default_rng(1)), ["e"]),
        "shifted": write_built(
            root / "shift", small_frame(np.random.default_rng(2), shift=True), ["e"]
        ),
    }


def _settings(inbox) -> SmtpSettings:
    return SmtpSettings(inbox.host, inbox.port, "drift@example.org", ["oncall@example.org"])


def test_columns_are_typed_and_empty_ones_skipped() -> None:
    ref = small_frame(np.random.default_rng(0)).assign(tier=1, empty=np.nan)
    num, cat, skipped = split_columns(ref, ref, CFG)
    assert num == ["a", "b", "c", "d", "f"]
    assert cat == ["e", "tier"]  # strings, and integers with few values (tiers)
    assert skipped == {"empty": "no values in reference"}


def test_injected_shift_flags_exactly_the_shifted_columns() -> None:
    ref = small_frame(np.random.default_rng(0))
    _, res = feature_drift(ref, small_frame(np.random.default_rng(2), shift=True), CFG)
    assert sorted(c for c, v in res["columns"].items() if v["drifted"]) == SHIFTED
    assert res["drifted"] and res["drift_share"] == pytest.approx(0.5)
    # "How much": the mean in the column's own units, before the log transform.
    assert res["columns"]["d"]["reference_mean"] == pytest.approx(ref["d"].mean())
    assert res["columns"]["e"]["category"] in {"x", "z"}


def test_no_drift_means_no_alert(frames: dict[str, Path], smtp_server, tmp_path: Path) -> None:
    summary = run_drift(frames["reference"], frames["same"], tmp_path / "run", CFG)
    assert not summary["drift_detected"] and summary["drifted_items"] == []
    assert summary["features"]["drift_share"] < CFG.drift_share
    result = alert_on_drift(
        summary, _settings(smtp_server), tmp_path / "state.json", CFG.cooldown_hours
    )
    assert result == {"sent": False, "reason": "no drift", "subject": None, "recipients": []}
    assert smtp_server.messages == []
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["signature"] is None and (tmp_path / "run" / "features.html").stat().st_size > 0


def test_shift_sends_an_alert_naming_the_shifted_features(
    frames: dict[str, Path], smtp_server, tmp_path: Path
) -> None:
    summary = run_drift(frames["reference"], frames["shifted"], tmp_path / "run", CFG)
    assert summary["drifted_items"] == [f"feature:{c}" for c in SHIFTED]
    result = alert_on_drift(
        summary, _settings(smtp_server), tmp_path / "state.json", CFG.cooldown_hours
    )
    assert result["sent"] and result["reason"] == "new drift"
    (msg,) = smtp_server.messages
    assert msg["To"] == "oncall@example.org" and "3 input features" in msg["Subject"]
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    for col in SHIFTED:
        assert f"<td>{col}</td>" in html and f"feature:{col}" in text
    for col in ("b", "c", "f"):  # not shifted: not in the e-mail's table
        assert f"<td>{col}</td>" not in html
    assert str(tmp_path / "run" / "report.html") in html


def test_same_drift_twice_sends_one_email(
    frames: dict[str, Path], smtp_server, tmp_path: Path
) -> None:
    state = tmp_path / "alert_state.json"
    day1 = datetime(2026, 4, 1, 6, tzinfo=UTC)
    first = run_drift(frames["reference"], frames["shifted"], tmp_path / "d1", CFG)
    second = run_drift(frames["reference"], frames["shifted"], tmp_path / "d2", CFG)
    assert first["signature"] == second["signature"]
    sent = [alert_on_drift(s, _settings(smtp_server), state, 72, now=day1 + timedelta(days=i))
            for i, s in enumerate([first, second])]  # fmt: skip
    assert [r["sent"] for r in sent] == [True, False]
    assert sent[1]["reason"].startswith("same drift already alerted")
    assert len(smtp_server.messages) == 1
    # After the cool-down the same drift is news again; a drift that ended clears the state.
    later = alert_on_drift(
        second, _settings(smtp_server), state, 72, now=day1 + timedelta(hours=73)
    )
    assert later["sent"] and len(smtp_server.messages) == 2
    calm = run_drift(frames["reference"], frames["same"], tmp_path / "d4", CFG)
    alert_on_drift(calm, _settings(smtp_server), state, 72, now=day1 + timedelta(days=4))
    assert read_state(state) is None
    again = alert_on_drift(second, _settings(smtp_server), state, 72, now=day1 + timedelta(days=5))
    assert again["reason"] == "new drift" and len(smtp_server.messages) == 3
