"""Baseline features are cached by the build's content hash and read back by later runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from qanchor.config import resolve
from qanchor.eval.evaluate import SCORES_FILE, EvalConfig, evaluate
from qanchor.eval.feature_cache import cached, entry_dir


def test_frames_round_trip_and_a_changed_build_or_setting_misses(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("QANCHOR_CACHE", str(tmp_path))
    frame = pd.DataFrame([[0.5, 1.0], [2.0, 3.0]], index=pd.Index(["a", "b"], name="user_id"))
    calls = []

    def compute():
        calls.append(1)
        return {"s1": frame, "s2": frame * 2}

    manifest = {"content_hash": "abc"}
    first, hit = cached(manifest, "llm_untrained", {"budget": 8}, compute)
    again, hit2 = cached(manifest, "llm_untrained", {"budget": 8}, compute)
    assert (hit, hit2, len(calls)) == (False, True, 1)
    for name in first:
        assert again[name].index.equals(first[name].index)
        assert (again[name].to_numpy() == first[name].to_numpy()).all()
    cached({"content_hash": "other"}, "llm_untrained", {"budget": 8}, compute)
    cached(manifest, "llm_untrained", {"budget": 9}, compute)
    cached(manifest, "llm_untrained", {"budget": 8}, compute, enabled=False)
    assert len(calls) == 4
    single, _ = cached(manifest, "text_mean_pool", {}, lambda: frame)
    assert isinstance(cached(manifest, "text_mean_pool", {}, lambda: None)[0], pd.DataFrame)
    assert entry_dir({}, "text_mean_pool", {}) is None  # no content hash: never cached


def test_a_second_evaluation_reads_the_baseline_features_back(
    tiny_model: Path, built_tiny: Path, tmp_path: Path
) -> None:
    base = ["text_mean_pool", "text_mean_pool_recent", "llm_untrained"]
    cfg = resolve(EvalConfig, "tiny", overrides={"baselines": base})
    first = evaluate(tiny_model, built_tiny, tmp_path / "one", cfg)
    second = evaluate(tiny_model, built_tiny, tmp_path / "two", cfg)
    report = (second / "report.md").read_text()
    assert (
        "Baseline features cached: text_mean_pool, text_mean_pool_recent, llm_untrained" in report
    )
    cached_names = [json.loads((d / "eval_details.json").read_text())["timings"].get(
        "baseline_features_cached") for d in (first, second)]  # fmt: skip
    assert cached_names == [None, ", ".join(base)]
    a, b = (pd.read_parquet(d / SCORES_FILE) for d in (first, second))
    pd.testing.assert_frame_equal(a, b)
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (first, second))
    assert m1["models"] == m2["models"]
