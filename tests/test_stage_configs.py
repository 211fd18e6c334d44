"""The stage configs as a whole: each setting declared once, nested settings reachable everywhere.

A stage config nests the configs it shares (``PretrainConfig.model``, ``.runtime``,
``ServingConfig.features``) instead of re-declaring their fields; these tests keep it so.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import types
import typing
from pathlib import Path

import pytest
import yaml

from qanchor.cli import build_parser
from qanchor.config import (
    add_config_args,
    apply_overrides,
    overrides_from_args,
    resolve,
    settings,
    to_dict,
)
from qanchor.data.build_config import BuildConfig
from qanchor.data.synth import SynthConfig
from qanchor.errors import QAnchorError
from qanchor.eval.config import EvalConfig
from qanchor.features.config import FeatureStoreConfig
from qanchor.model.config import ModelConfig, PretrainConfig
from qanchor.monitoring.config import DriftConfig
from qanchor.runtime_config import RuntimeConfig
from qanchor.serving.config import ServingConfig
from qanchor.tune.config import TuneConfig

LIBRARY = Path(__file__).resolve().parents[1] / "qanchor"
STAGES = (BuildConfig, SynthConfig, PretrainConfig, TuneConfig, EvalConfig, FeatureStoreConfig,
          ServingConfig, DriftConfig)  # fmt: skip
# One name, a different setting in each stage that declares it. Any other repeated name is a
# setting declared twice: nest the config that owns it instead.
SAME_NAME_OTHER_SETTING = {
    # each stage's own random stream; the model stages share RuntimeConfig.seed
    "seed": {"SynthConfig", "BuildConfig", "DriftConfig", "RuntimeConfig"},
    # pretraining's optimiser and InfoNCE vs soft-prompt tuning's optimiser and prototype softmax
    "steps": {"PretrainConfig", "TuneConfig"},
    "batch_size": {"PretrainConfig", "TuneConfig"},
    "lr": {"PretrainConfig", "TuneConfig"},
    "temperature": {"PretrainConfig", "TuneConfig"},
    # days the generator writes after the history vs the future window the build summarises
    "future_days": {"SynthConfig", "BuildConfig"},
    # events a snapshot keeps per source vs event tokens the model reads per source
    "source_caps": {"BuildConfig", "ModelConfig"},
    # scenarios a build keeps vs scenarios the drift job monitors
    "scenarios": {"BuildConfig", "DriftConfig"},
}


def declared_fields() -> dict[str, list[str]]:
    """Config/settings class -> the settings it declares itself, from the library's source.

    Classes named ``*Config``/``*Settings``; a field that nests another such class and a
    ``recorded(...)`` field (a fact the code fills in, not a setting) are not settings.
    """
    classes = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Config", "Settings")):
                classes[node.name] = [s for s in node.body if isinstance(s, ast.AnnAssign)]
    out = {}
    for name, body in classes.items():
        fields = []
        for stmt in body:
            ann, value = ast.unparse(stmt.annotation), stmt.value
            is_recorded = isinstance(value, ast.Call) and ast.unparse(value.func) == "recorded"
            skip = ann.startswith("ClassVar") or stmt.target.id == "model_config"  # pydantic's
            if not (skip or is_recorded or ann in classes):
                fields.append(stmt.target.id)
        out[name] = fields
    return out


def test_no_setting_is_declared_in_two_configs() -> None:
    fields = declared_fields()
    assert {"ModelConfig", "PretrainConfig", "RuntimeConfig", "EmbedRuntimeConfig", "TuneConfig",
            "EvalConfig", "BuildConfig", "SynthConfig", "FeatureStoreConfig", "ServingConfig",
            "DriftConfig", "LinkSettings", "SmtpSettings", "RunSettings"} <= set(fields)  # fmt: skip
    owners: dict[str, set[str]] = {}
    for cls, names in fields.items():
        for name in names:
            owners.setdefault(name, set()).add(cls)
    repeated = {name: cls for name, cls in owners.items() if len(cls) > 1}
    unexpected = {n: c for n, c in repeated.items() if c != SAME_NAME_OTHER_SETTING.get(n)}
    assert not unexpected, f"declared in more than one config: {unexpected}"


@pytest.mark.parametrize("cls", STAGES, ids=lambda c: c.__name__)
def test_each_stage_tree_names_its_settings_once_and_its_presets_resolve(cls: type) -> None:
    assert settings(cls)  # raises if a tree repeats a name
    for preset in ("tiny", "small", "paper"):
        cfg = resolve(cls, preset)
        assert resolve(cls, overrides=to_dict(cfg)) == cfg  # a saved config reads back


def nested_settings() -> list[tuple[type, str, tuple[str, ...]]]:
    return [(cls, name, path) for cls in STAGES for name, path in settings(cls).items()
            if len(path) > 1]  # fmt: skip


def sample(cls: type, path: tuple[str, ...]) -> tuple[object, str]:
    """A value unlike the field's default, and how a flag spells it."""
    owner = at(cls(), path[:-1])
    default = getattr(owner, path[-1])
    hint = typing.get_type_hints(type(owner))[path[-1]]
    if isinstance(hint, types.UnionType):  # X | None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    kind = typing.get_origin(hint) or hint
    if kind is bool:
        return (not default), str(not default)
    if kind in (int, float):
        return (default or 0) + 3, str((default or 0) + 3)
    if kind is list:
        return ["q_proj", "v_proj"], "q_proj,v_proj"
    if kind is dict:
        return {"app": 2}, "app=2"
    return f"x-{path[-1]}", f"x-{path[-1]}"


def at(cfg: object, path: tuple[str, ...]) -> object:
    for name in path:
        cfg = getattr(cfg, name)
    return cfg


@pytest.mark.parametrize(
    ("cls", "name", "path"),
    nested_settings(),
    ids=[f"{cls.__name__}.{'.'.join(path)}" for cls, _, path in nested_settings()],
)
def test_a_nested_setting_is_set_by_preset_yaml_and_flag(
    cls: type, name: str, path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value, text = sample(cls, path)
    mapping: dict = {path[-1]: value}
    for head in reversed(path[:-1]):
        mapping = {head: mapping}
    monkeypatch.setattr(cls, "PRESETS", {"tiny": mapping})
    assert at(resolve(cls, "tiny"), path) == value
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(mapping))
    assert at(resolve(cls, yaml_path=tmp_path / "c.yaml"), path) == value
    parser = argparse.ArgumentParser()
    add_config_args(parser, cls)
    args = parser.parse_args([f"--{name.replace('_', '-')}", text])
    assert at(resolve(cls, overrides=overrides_from_args(args, cls)), path) == value


def cli_config(cls: type, argv: list[str]) -> object:
    """The config a ``qanchor`` subcommand resolves from ``argv`` (as its handler does)."""
    args = build_parser().parse_args(argv)
    return resolve(cls, args.preset, args.config, overrides_from_args(args, cls))


def test_the_stage_commands_keep_their_flags_and_gain_the_model_ones() -> None:
    cfg = cli_config(PretrainConfig, [
        "pretrain", "--data", "d", "--out", "o", "--lora-r", "3", "--bag-dim", "0", "--seed", "5",
        "--feature-repo", "fr", "--bf16", "on", "--device", "cpu", "--steps", "7",
        "--encoder-max-length", "32", "--lora-targets", "q_proj,v_proj",
    ])  # fmt: skip
    assert (cfg.model.lora_r, cfg.model.bag_dim, cfg.model.encoder_max_length) == (3, 0, 32)
    assert cfg.model.lora_targets == ["q_proj", "v_proj"] and (cfg.steps, cfg.device) == (7, "cpu")
    assert cfg.runtime == RuntimeConfig(seed=5, bf16="on", feature_repo="fr")
    assert cfg.model.backbone_layers == 4  # the rest is the `small` preset
    runtime = ["--seed", "2", "--bf16", "off", "--cache-mb", "64", "--feature-repo", "fr"]
    tune = cli_config(TuneConfig, ["tune", "--model", "m", "--data", "d", *runtime])
    evaluate = cli_config(EvalConfig, ["evaluate", "--model", "m", "--data", "d", "--out", "o", *runtime])  # fmt: skip
    for got in (tune.runtime, evaluate.runtime):
        assert (got.seed, got.bf16, got.cache_mb, got.feature_repo) == (2, "off", 64, "fr")


def test_bare_dotted_and_nested_keys_set_the_same_field_and_merge() -> None:
    tiny = resolve(PretrainConfig, "tiny")
    by_bare = resolve(PretrainConfig, "tiny", overrides={"lora_r": 3, "seed": 1})
    assert by_bare == resolve(PretrainConfig, "tiny", overrides={"model.lora_r": 3, "runtime.seed": 1})  # fmt: skip
    assert by_bare == resolve(
        PretrainConfig, "tiny", overrides={"model": {"lora_r": 3}, "runtime": {"seed": 1}}
    )
    # A mapping changes the fields it names; the preset's others stay.
    assert by_bare.model == dataclasses.replace(tiny.model, lora_r=3)
    assert resolve(EvalConfig, "tiny").runtime.cache_mb == 2048  # evaluation's own default


def test_recorded_model_fields_are_facts_not_settings() -> None:
    assert not {"sources", "profile_dim"} & set(settings(PretrainConfig))
    assert settings(PretrainConfig)["seed"] == ("runtime", "seed")
    with pytest.raises(QAnchorError, match=r"unknown field\(s\) \['sources'\]"):
        resolve(PretrainConfig, overrides={"model.sources": ["bill"]})
    model = resolve(PretrainConfig, "tiny", overrides={"seed": 4}).model_config(["bill"], 3)
    assert (model.seed, model.sources, model.profile_dim) == (4, ["bill"], 3)


# The config.json records of the tiny model as saved before the configs were nested.
OLD_MODEL = {"backbone": "tiny", "encoder": "tiny", "backbone_layers": None, "lora_r": 4,
             "lora_alpha": 8, "lora_dropout": 0.0, "lora_targets": ["q_proj", "k_proj", "v_proj",
             "o_proj", "gate_proj", "up_proj", "down_proj"], "encoder_lora_r": 0, "head_hidden": 32,
             "emb_dim": 16, "events_per_source": 3, "source_caps": {}, "max_query_tokens": 48,
             "max_answer_tokens": 64, "encoder_max_length": 64, "user_tokens": True,
             "user_skip": True, "whole_history": True, "coarse_pool": "mean", "bag_dim": 8,
             "seed": 0, "sources": ["app", "bill"], "profile_dim": 96}  # fmt: skip
OLD_PRETRAIN = {**{k: v for k, v in OLD_MODEL.items() if k not in
                   ("lora_targets", "encoder_max_length", "sources", "profile_dim")},
                "temperature": 0.07, "margin": 0.1, "margin_filter": True,
                "neg_terms": ["uv", "uu", "vv"], "contrastive_weight": 1.0, "lm_weight": 1.0,
                "future_pair_prob": 0.5, "steps": 12, "batch_size": 8, "grad_accum": 1, "lr": 0.003,
                "weight_decay": 0.01, "warmup_steps": 2, "clip_grad": 1.0, "device": "auto",
                "bf16": "off", "checkpoint_every": 0, "log_every": 2, "eval_users": 16,
                "eval_batch": 8, "feature_repo": None}  # fmt: skip


def test_a_model_saved_before_nesting_still_reads() -> None:
    # The tiny preset as it was then: exact texts and the whole vocabulary's next-token loss (the
    # records have no text_numbers or lm_shortlist, and read back as "keep" and False, the way
    # those models were trained).
    then = {"text_numbers": "keep", "lm_shortlist": False}
    tiny = resolve(PretrainConfig, "tiny", overrides=then)
    assert ModelConfig(**OLD_MODEL) == tiny.model_config(["app", "bill"], 96)  # load_model's read
    assert apply_overrides(PretrainConfig(), OLD_PRETRAIN) == tiny  # the flat pretrain record
