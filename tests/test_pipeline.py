"""`qanchor run --preset tiny --feature-repo feature_repo` end to end (what `make run` runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qanchor.cli import build_parser, main
from qanchor.config import resolve
from qanchor.data.synth import SynthConfig, synth
from qanchor.errors import QAnchorError

REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def test_run_tiny_end_to_end(tmp_path: Path, capsys) -> None:
    raw = synth(SynthConfig(users=150, seed=2), tmp_path / "raw")
    out = tmp_path / "run"
    args = [
        "run",
        "--data",
        str(raw),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--feature-repo",
        str(REPO),
        "--seed",
        "3",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"metrics: {out / 'eval'}/metrics.json" in printed
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {
        "qanchor_tuned",
        "qanchor_base",
        "tfidf_lr",
        "gbdt_features",
        "text_mean_pool",
        "text_mean_pool_recent",
        "llm_untrained",
    }
    assert len(metrics["scenarios"]) >= 10
    for model in metrics["models"].values():
        assert model["per_scenario"] and 0.0 <= model["mean_auc"] <= 1.0
    adapters = sorted(p.name for p in (out / "model" / "scenarios").iterdir())
    assert adapters == sorted(metrics["scenarios"])
    assert (out / "eval" / "report.md").is_file() and (out / "eval" / "roc_curves.png").is_file()
    # Under the title: the data, preset and run; then the verdict, which warns of random models.
    verdict = json.loads((out / "eval" / "eval_details.json").read_text())["verdict"]
    report = (out / "eval" / "report.md").read_text()
    title, about, first = report.split("\n\n")[:3]
    assert title == f"# Evaluation report: {raw.name}" and about.startswith(f"Data `{raw.name}`")
    assert "preset `tiny`" in about
    assert first.startswith(f"**Verdict:** `{verdict['winner']}` wins")
    assert verdict["preset"] == "tiny" and "Preset `tiny`." in report
    assert "Warning: random models" in report and verdict["ci95"] is not None
    run = json.loads((out / "run.json").read_text())
    assert set(run["seconds"]) == {"build", "features", "pretrain", "tune", "evaluate"}
    assert run["feature_repo"] == str(REPO) and run["seed"] == 3
    assert (out / "built" / "feature_store" / "online_store.db").is_file()
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["pretrain"]["runtime"]["feature_repo"] == str(REPO)  # pretraining read the store
    assert config["pretrain"]["runtime"]["seed"] == 3 and config["model"]["seed"] == 3
    manifest = json.loads((out / "built" / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 3  # the seed also salted the user split


def test_run_parses_seed() -> None:
    args = build_parser().parse_args(["run", "--data", "d", "--out", "o"])
    assert args.seed is None  # each stage keeps its own default
    args = build_parser().parse_args(["run", "--data", "d", "--out", "o", "--seed", "7"])
    assert args.seed == 7


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Replace the four stage functions by recorders of the config each one receives."""
    import qanchor.data.build
    import qanchor.eval.evaluate
    import qanchor.model.pretrain
    import qanchor.tune.prompt

    seen: dict = {}

    def recorder(name: str):
        return lambda *args: seen.__setitem__(name, args[-1])

    monkeypatch.setattr(qanchor.data.build, "build_dataset", recorder("build"))
    monkeypatch.setattr(qanchor.model.pretrain, "pretrain", recorder("pretrain"))
    monkeypatch.setattr(qanchor.tune.prompt, "tune_model", recorder("tune"))
    monkeypatch.setattr(qanchor.eval.evaluate, "evaluate", recorder("evaluate"))
    return seen


def test_run_all_seed_and_overrides_reach_every_stage(tmp_path: Path, fake_stages: dict) -> None:
    from qanchor.pipeline import run_all

    over = {"pretrain": {"steps": "5", "user_skip": False}, "build": {"val_fraction": 0.3}}
    run = run_all(tmp_path / "raw", tmp_path / "run", "tiny", seed=4, overrides=over)
    assert fake_stages["build"].seed == 4  # the split salt
    assert [fake_stages[s].runtime.seed for s in ("pretrain", "tune", "evaluate")] == [4, 4, 4]
    assert fake_stages["pretrain"].steps == 5 and fake_stages["pretrain"].model.user_skip is False
    assert fake_stages["pretrain"].lr == 3e-3  # the rest is still the tiny preset
    assert fake_stages["build"].val_fraction == 0.3
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["seed"] == run["seed"] == 4 and saved["overrides"] == over


def test_run_all_prints_a_line_when_each_stage_starts_and_ends(
    tmp_path: Path, fake_stages: dict, capsys
) -> None:
    import re

    from qanchor.pipeline import run_all

    run_all(tmp_path / "raw", tmp_path / "run", "tiny")
    lines = capsys.readouterr().out.splitlines()
    stages = ("build", "pretrain", "tune", "evaluate")
    want = [
        rf"\d\d:\d\d:\d\d  {s} +{what}"
        for s in stages
        for what in ("started", r"done in \d+\.\d s")
    ]
    assert len(lines) == len(want)
    for line, pattern in zip(lines, want, strict=True):
        assert re.fullmatch(pattern, line), line


def test_run_all_without_seed_keeps_the_presets(tmp_path: Path, fake_stages: dict) -> None:
    from qanchor.data.build import BuildConfig
    from qanchor.eval.evaluate import EvalConfig
    from qanchor.model.config import PretrainConfig
    from qanchor.pipeline import run_all
    from qanchor.tune.config import TuneConfig

    run_all(tmp_path / "raw", tmp_path / "run", "tiny")
    classes = {"build": BuildConfig, "pretrain": PretrainConfig, "tune": TuneConfig,
               "evaluate": EvalConfig}  # fmt: skip
    assert fake_stages == {name: resolve(cls, "tiny") for name, cls in classes.items()}


def test_run_all_rejects_unknown_stages_and_fields_before_running(
    tmp_path: Path, fake_stages: dict
) -> None:
    from qanchor.pipeline import run_all

    with pytest.raises(QAnchorError, match="unknown stage"):
        run_all(tmp_path / "raw", tmp_path / "run", "tiny", overrides={"train": {"steps": 1}})
    with pytest.raises(QAnchorError, match="unknown field"):
        run_all(tmp_path / "raw", tmp_path / "run", "tiny", overrides={"tune": {"stepz": 1}})
    assert fake_stages == {}  # nothing ran
