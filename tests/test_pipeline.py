"""`qanchor run --preset tiny --feature-repo feature_repo` end to end (what `make run` runs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qanchor.cli import build_parser, main
from qanchor.config import resolve
from qanchor.data.synth import SynthConfig, synth
from qanchor.errors import QAnchorError

REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def test_run_tiny_end_to_end(tmp_path: Path, capfd) -> None:
    """Every stage of the chain through the stage functions (those before embed in a spawned
    process, whose console lines ``capfd`` catches at the file descriptor)."""
    import re

    import pandas as pd

    from qanchor.orchestrate import chain
    from qanchor.orchestrate.stages import tune_key

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
        "--model-name",
        "qanchor-run-test",  # the gate and registry tests own the session store's "qanchor"
    ]
    assert main(args) == 0
    printed = capfd.readouterr().out
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
    # The chain, stage by stage: a start and an end line each, a recorded result each.
    lines = [line for line in printed.splitlines() if re.fullmatch(r"\d\d:\d\d:\d\d  .*", line)]
    assert [line[10:].split()[0] for line in lines[::2]] == list(chain.NAMES)
    assert all(line.endswith("started") for line in lines[::2])
    assert all(
        re.search(r"done in \d+\.\d s, peak memory [\d,]+ MB$", line) for line in lines[1::2]
    )
    run = json.loads((out / "run.json").read_text())
    assert run["stages"] == list(chain.NAMES) and list(run["seconds"]) == list(chain.NAMES)
    # Each stage's own peak: at least the model-free interpreter, less than this machine has.
    assert list(run["peak_rss_mb"]) == list(chain.NAMES)
    assert all(50 < mb < 24_000 for mb in run["peak_rss_mb"].values())
    groups = json.loads((out / "stages" / "build.json").read_text())["tune_groups"]
    shards = sorted((out / "embeddings").glob("shard-*.parquet"))
    assert len(shards) == len(os.sched_getaffinity(0))  # one one-thread share per core
    per_item = [*(tune_key(g) for g in groups), *(f"embed-{i}" for i in range(len(shards)))]
    results = {p.stem for p in (out / "stages").glob("*.json")}
    assert results == {*chain.NAMES, *per_item} - {"tune", "embed"}
    # The first model passes the gate, is promoted, and every user is embedded per scenario.
    assert run["gate"]["passed"] and run["register"]["registered"]
    assert f"model:   {run['register']['tag']} (promoted)" in printed
    shard = pd.concat([pd.read_parquet(p) for p in shards])
    users = pd.read_parquet(out / "built" / "users.parquet")["user_id"]
    assert len(shard) == len(users) * len(metrics["scenarios"])
    assert set(shard["user_id"]) == set(users)
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


def test_seed_and_overrides_reach_every_configured_stage() -> None:
    from qanchor.pipeline import config_classes, resolve_overrides

    over = {"pretrain": {"steps": "5", "user_skip": False}, "build": {"val_fraction": 0.3}}
    resolved = resolve_overrides("tiny", 4, over)
    cfgs = {name: resolve(cls, "tiny", overrides=resolved[name])
            for name, cls in config_classes().items()}  # fmt: skip
    assert cfgs["build"].seed == 4  # the split salt
    assert [cfgs[s].runtime.seed for s in ("pretrain", "tune", "evaluate")] == [4, 4, 4]
    assert cfgs["pretrain"].steps == 5 and cfgs["pretrain"].model.user_skip is False
    assert cfgs["pretrain"].lr == 3e-3  # the rest is still the tiny preset
    assert cfgs["build"].val_fraction == 0.3
    # Without a seed or overrides every stage keeps its preset.
    assert resolve_overrides("tiny", None, None) == dict.fromkeys(config_classes(), {})
    # --bf16 reaches every stage that runs the model, and only those.
    resolved = resolve_overrides("small", None, None, bf16="off")
    cfgs = {name: resolve(cls, "small", overrides=resolved[name])
            for name, cls in config_classes().items()}  # fmt: skip
    assert [cfgs[s].runtime.bf16 for s in ("pretrain", "tune", "evaluate")] == ["off"] * 3
    assert resolved["build"] == {}
    args = build_parser().parse_args(["run", "--data", "d", "--out", "o", "--bf16", "off"])
    assert args.bf16 == "off"


def test_run_all_rejects_unknown_stages_and_fields_before_running(tmp_path: Path) -> None:
    from qanchor.pipeline import run_all

    with pytest.raises(QAnchorError, match="unknown stage"):
        run_all(tmp_path / "raw", tmp_path / "run", "tiny", overrides={"train": {"steps": 1}})
    with pytest.raises(QAnchorError, match="unknown field"):
        run_all(tmp_path / "raw", tmp_path / "run", "tiny", overrides={"tune": {"stepz": 1}})
    with pytest.raises(KeyError, match="no stage 'train'"):
        run_all(tmp_path / "raw", tmp_path / "run", "tiny", through="train")
    assert not (tmp_path / "run").exists()  # nothing ran


def test_a_stage_error_reaches_the_caller_from_the_spawned_stage_process(tmp_path: Path) -> None:
    """The stages before embed run in a spawned process (what they leave in the heap goes with
    it); the data owner still gets the build's ContractError, file and column intact."""
    import pickle

    from qanchor.errors import ContractError
    from qanchor.pipeline import run_all

    raw = synth(SynthConfig(users=20, seed=1), tmp_path / "raw")
    (raw / "scenarios.yaml").write_text("- name: churn\n")  # a scenario without a query
    with pytest.raises(ContractError, match="scenario without a query") as info:
        run_all(raw, tmp_path / "run", "tiny")
    assert info.value.file == "scenarios.yaml" and info.value.column == "query"
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.rows == info.value.rows


def test_qanchor_bf16_sets_the_precision_of_every_orchestrated_model_stage(monkeypatch) -> None:
    from qanchor.data.build_config import BuildConfig
    from qanchor.eval.config import EvalConfig
    from qanchor.model.config import PretrainConfig
    from qanchor.orchestrate.stages import stage_config
    from qanchor.tune.config import TuneConfig

    models = (PretrainConfig, TuneConfig, EvalConfig)
    assert [stage_config(c, "small").runtime.bf16 for c in models] == ["auto"] * 3
    monkeypatch.setenv("QANCHOR_BF16", "off")  # a machine without native bf16
    assert [stage_config(c, "small").runtime.bf16 for c in models] == ["off"] * 3
    assert stage_config(BuildConfig, "small") == resolve(BuildConfig, "small")  # no such field
    over = {"runtime": {"bf16": "on"}}  # a stage's explicit setting still wins
    assert stage_config(TuneConfig, "small", overrides=over).runtime.bf16 == "on"
    monkeypatch.setenv("QANCHOR_BF16", "fast")
    with pytest.raises(ValueError, match="QANCHOR_BF16"):
        stage_config(TuneConfig, "small")


def test_tune_and_evaluate_each_start_a_process_of_their_own() -> None:
    """What a stage leaves in the heap must not count towards the next big one's peak."""
    from qanchor.orchestrate import chain
    from qanchor.pipeline import process_groups

    head = [s.name for s in chain.through("register")]
    assert process_groups(head) == [
        ["build", "materialize", "pretrain"],
        ["tune"],
        ["evaluate", "gate", "register"],
    ]
    assert process_groups(["build", "materialize"]) == [["build", "materialize"]]
    assert process_groups([]) == []
