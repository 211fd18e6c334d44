"""metrics.json follows DESIGN.md section 4 exactly; report.md links three rendered charts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qanchor.eval.metrics import auc_ks
from qanchor.eval.probe import ProbeResults
from qanchor.eval.report import write_metrics, write_report

SCENARIOS = ["a", "b", "c"]


def _results() -> dict:
    rng = np.random.default_rng(0)

    def scored(signal: float, scenarios=SCENARIOS) -> ProbeResults:
        out = ProbeResults()
        for s in scenarios:
            y = rng.integers(0, 2, 80)
            out[s] = (y, signal * y + rng.random(80))
        return out

    partial = scored(0.3, ["a", "b"])
    partial.skipped["c"] = "test has 80 users and label values [0] (need both classes)"
    # Deliberately out of order, with an unknown model key: the file must follow MODEL_ORDER.
    return {
        "my_model": scored(0.1),
        "gbdt_features": scored(0.5),
        "qanchor_tuned": scored(1.0),
        "text_mean_pool": partial,
    }


def test_metrics_json_schema(tmp_path: Path) -> None:
    results = _results()
    metrics = write_metrics(tmp_path, "toy", SCENARIOS, results)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk) == {"dataset", "scenarios", "models"}
    assert on_disk["dataset"] == "toy" and on_disk["scenarios"] == SCENARIOS
    assert list(on_disk["models"]) == [
        "qanchor_tuned",
        "gbdt_features",
        "text_mean_pool",
        "my_model",
    ]
    for name, m in on_disk["models"].items():
        assert set(m) == {"mean_auc", "mean_ks", "per_scenario"}
        assert isinstance(m["mean_auc"], float) and isinstance(m["mean_ks"], float)
        expected = ["a", "b"] if name == "text_mean_pool" else SCENARIOS
        assert list(m["per_scenario"]) == expected
        for s, v in m["per_scenario"].items():
            assert set(v) == {"auc", "ks"} and all(isinstance(x, float) for x in v.values())
            assert (v["auc"], v["ks"]) == pytest.approx(auc_ks(*results[name][s]))
        per = m["per_scenario"].values()
        assert m["mean_auc"] == pytest.approx(np.mean([v["auc"] for v in per]), abs=1e-12)
        assert m["mean_ks"] == pytest.approx(np.mean([v["ks"] for v in per]), abs=1e-12)
    details = json.loads((tmp_path / "eval_details.json").read_text())
    tmp = details["models"]["text_mean_pool"]
    assert "need both classes" in tmp["skipped"]["c"]
    y_a = results["qanchor_tuned"]["a"][0]
    assert details["models"]["qanchor_tuned"]["per_scenario"]["a"] == {
        "n_test": 80,
        "positives": int(y_a.sum()),
    }


def test_unscorable_results_never_reach_metrics_json(tmp_path: Path) -> None:
    y = np.array([0, 1, 0, 1])
    results = {
        "qanchor_base": {"a": (y, np.array([0.1, 0.9, 0.2, 0.8])), "b": (np.zeros(4), np.ones(4))},
        "llm_untrained": {"b": (np.zeros(4), np.ones(4))},  # nothing scorable
    }
    metrics = write_metrics(tmp_path, "toy", ["a", "b"], results)
    assert list(metrics["models"]) == ["qanchor_base"]
    assert metrics["models"]["qanchor_base"]["mean_auc"] == 1.0
    details = json.loads((tmp_path / "eval_details.json").read_text())
    assert "both classes" in details["models"]["qanchor_base"]["skipped"]["b"]
    assert details["models"]["llm_untrained"]["left_out"]


def test_report_tables_and_charts(tmp_path: Path) -> None:
    results = _results()
    metrics = write_metrics(tmp_path, "toy", SCENARIOS, results)
    path = write_report(tmp_path, metrics, results, extra_md="## Timings\n\n| what | s |\n")
    text = path.read_text()
    assert path == tmp_path / "report.md"
    # Summary sorted by mean AUC; the strongest model (signal 1.0) first and in bold.
    summary = text.split("## Summary")[1].split("##")[0]
    rows = [r for r in summary.splitlines() if r.startswith("| `")]
    ranked = sorted(metrics["models"], key=lambda m: -metrics["models"][m]["mean_auc"])
    assert [r.split("`")[1] for r in rows] == ranked
    assert rows[0].startswith("| `qanchor_tuned` | **")
    header = (
        "| scenario | qanchor_tuned | gbdt_features | text_mean_pool | my_model | test n (pos) |"
    )
    assert text.count(header) == 2  # AUC and KS tables
    assert "| c | " in text and "–" in text  # text_mean_pool has no value for c
    assert "`text_mean_pool` / c: test has 80 users" in text
    assert text.rstrip().endswith("| what | s |")
    for png in ("auc_bars.png", "ks_bars.png", "roc_curves.png"):
        assert f"]({png})" in text
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_timings_are_a_readable_table() -> None:
    from qanchor.eval.evaluate import _extra_md

    text = _extra_md({"churn": 2048}, {"qanchor_tuned_embed_s": 5.43, "prefix_cache": {
        "entries": 2000, "bytes": 41336320, "hits": 2000}})  # fmt: skip
    assert "| stage | seconds |\n|---|---:|\n| qanchor tuned embed | 5.4 |" in text
    assert "Prefix cache: entries 2,000, bytes 39.4 MB, hits 2,000." in text
    assert "{" not in text
