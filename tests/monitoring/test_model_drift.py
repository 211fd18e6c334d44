"""Embedding and score drift: the statistics on made-up vectors, then a run with a tiny tuned model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qanchor.config import resolve
from qanchor.model.identity import model_id
from qanchor.monitoring.alert import SmtpSettings, alert_on_drift
from qanchor.monitoring.config import DriftConfig
from qanchor.monitoring.embeddings import embedding_drift, scores
from qanchor.monitoring.job import run_drift
from qanchor.monitoring.message import render_html

SCENARIOS = ["cash_loan_default", "churn_next_month"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_score_is_the_prototype_cosine_margin() -> None:
    rng = np.random.default_rng(0)
    protos = {"s": _unit(rng.normal(size=(2, 8)))}
    u = np.stack([protos["s"][1], protos["s"][0]])[:, None, :]  # [users=2, scenarios=1, d]
    got = scores(u, ["s", "untuned"], protos)
    margin = 1.0 - protos["s"][0] @ protos["s"][1]
    assert list(got.columns) == ["s"]  # an untuned scenario has no prototypes, so no score
    assert got["s"].to_numpy() == pytest.approx([margin, -margin], abs=1e-6)


@pytest.mark.parametrize("method", ["model", "distance", "mmd"])
def test_embedding_drift_flags_a_moved_cloud_only(method: str) -> None:
    rng = np.random.default_rng(0)
    ref, same, moved = (_unit(rng.normal(size=(300, 1, 16)) + shift) for shift in (0.0, 0.0, 0.6))
    cfg = DriftConfig(embedding_method=method)
    assert not embedding_drift(ref, same, ["s"], cfg)["scenarios"]["s"]["drifted"]
    hit = embedding_drift(ref, moved, ["s"], cfg)["scenarios"]["s"]
    assert hit["drifted"] and hit["bootstrap"]  # under 1000 rows: judged against a bootstrap


@pytest.fixture(scope="module")
def tuned_model(drift_model: Path) -> Path:
    return drift_model


def test_run_with_a_model_reports_embeddings_and_scores(
    tuned_model: Path, drift_data: dict[str, Path], tmp_path: Path
) -> None:
    cfg = resolve(DriftConfig, "tiny")
    summary = run_drift(
        drift_data["reference"], drift_data["shifted"], tmp_path / "run", cfg, tuned_model
    )
    emb, sc = summary["embeddings"], summary["scores"]
    assert sorted(emb["scenarios"]) == SCENARIOS == sorted(sc["scenarios"])
    assert emb["rows"] == {"reference": cfg.embedding_sample, "current": cfg.embedding_sample}
    for v in emb["scenarios"].values():
        assert v["method"] == "model" and 0.0 <= v["score"] <= 1.0  # classifier ROC AUC
    for v in sc["scenarios"].values():
        assert v["method"] == "K-S p_value" and 0.0 <= v["score"] <= 1.0
        assert np.isfinite(v["reference_mean"]) and np.isfinite(v["current_mean"])
    flagged = {i for i in summary["drifted_items"] if not i.startswith("feature:")}
    assert flagged == {f"{k}:{s}" for k in ("embedding", "score") for s in SCENARIOS
                       if summary[k + "s"]["scenarios"][s]["drifted"]}  # fmt: skip
    assert (tmp_path / "run" / "scores.html").stat().st_size > 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Embeddings:" in page and "Scenario scores:" in page and "cash_loan_default" in page
    # The model is named by the identity the service and the registry use.
    assert summary["model_version"] == model_id(tuned_model)
    assert f"<code>qanchor:{model_id(tuned_model)}</code>" in render_html(summary)


def test_alert_email_has_absolute_links_the_model_identity_and_next_steps(
    tuned_model: Path,
    drift_data: dict[str, Path],
    smtp_server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The e-mail an on-call engineer gets, through a real SMTP server: every link absolute
    (from the configured base URLs), the model by its registry version, the Evidently project,
    and what to do: whether a retrain started, how to start one, how to silence it."""
    monkeypatch.setenv("QANCHOR_DRIFT_REPORTS_URL", "https://drift.example.org/reports/")
    monkeypatch.setenv("QANCHOR_EVIDENTLY_URL", "https://evidently.example.org")
    monkeypatch.setenv("QANCHOR_AIRFLOW_URL", "https://airflow.example.org/")
    cfg = resolve(DriftConfig, "tiny")
    out, ws = tmp_path / "drift" / "2026-04-01", tmp_path / "workspace"
    summary = run_drift(drift_data["reference"], drift_data["shifted"], out, cfg, tuned_model, ws)
    assert summary["drift_detected"]
    settings = SmtpSettings(host=smtp_server.host, port=smtp_server.port, recipients=["oncall@example.org"])  # fmt: skip
    state = tmp_path / "drift" / "alert_state.json"
    assert alert_on_drift(summary, settings, state, cfg.cooldown_hours, retrain=False)["sent"]
    (msg,) = smtp_server.messages
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    project = summary["workspace"]["project_id"]
    run_ids = list(summary["workspace"]["runs"].values())
    for body in (html, text):
        assert f"qanchor:{model_id(tuned_model)}" in body
        assert "https://drift.example.org/reports/2026-04-01/report.html" in body
        assert f"https://evidently.example.org/projects/{project}" in body
        assert "https://airflow.example.org/dags/qanchor_retrain" in body
        assert (
            "No retraining was triggered (the trigger_retrain param of qanchor_drift is off)"
            in body
        )
        assert "airflow dags trigger qanchor_retrain" in body
        assert "not e-mailed again for 72 h" in body and "cooldown_hours" in body
    assert 'href="https://drift.example.org/reports/2026-04-01/scores.html"' in html
    for rid in run_ids:
        assert f'href="https://evidently.example.org/projects/{project}/reports/{rid}"' in html
    # No relative link is left for a mail client to fail on.
    hrefs = [h.split('"', 1)[0] for h in html.split('href="')[1:]]
    assert hrefs and all(h.startswith("https://") for h in hrefs), hrefs
