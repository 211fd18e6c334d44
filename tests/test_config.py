"""Typed configs: defaults, presets, YAML and CLI overrides, and clear errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from qanchor.config import (
    add_config_args,
    nested,
    option,
    overrides_from_args,
    recorded,
    resolve,
    to_dict,
)
from qanchor.errors import QAnchorError


@dataclass
class DemoConfig:
    steps: int = option(10, "training steps")
    lr: float = option(1e-3, "learning rate")
    name: str | None = option(None, "optional name")
    caps: dict[str, int] = option({}, "per-source caps")
    layers: list[int] = option([1, 2], "layer ids")
    fast: bool = option(False, "skip slow things")

    PRESETS = {"tiny": {"steps": 2}, "paper": {"steps": 50_000, "lr": 2e-4}}


def test_order_is_defaults_preset_yaml_overrides(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("lr: 0.5\nsteps: 7\n")
    assert resolve(DemoConfig).steps == 10
    assert resolve(DemoConfig, "paper").lr == 2e-4
    cfg = resolve(DemoConfig, "paper", y, {"steps": "9"})
    assert (cfg.steps, cfg.lr) == (9, 0.5)
    assert resolve(DemoConfig, "small").steps == 10  # a preset a config does not define = defaults


def test_cli_values_are_coerced_to_field_types() -> None:
    p = argparse.ArgumentParser()
    add_config_args(p, DemoConfig)
    args = p.parse_args(
        ["--caps", "app=10,bill=5", "--layers", "3,4", "--fast", "yes", "--name", "none"]
    )
    cfg = resolve(DemoConfig, overrides=overrides_from_args(args, DemoConfig))
    assert cfg.caps == {"app": 10, "bill": 5} and cfg.layers == [3, 4] and cfg.fast is True
    assert cfg.name is None


def test_mutable_defaults_are_not_shared() -> None:
    a, b = DemoConfig(), DemoConfig()
    a.caps["x"] = 1
    assert b.caps == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"overrides": {"stepz": 1}}, r"unknown field\(s\) \['stepz'\]"),
        ({"overrides": {"steps": "many"}}, "cannot read 'many'"),
        ({"overrides": {"fast": "maybe"}}, "cannot read 'maybe'"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs: dict, match: str) -> None:
    with pytest.raises(QAnchorError, match=match):
        resolve(DemoConfig, **kwargs)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("- 1\n- 2\n")
    with pytest.raises(QAnchorError, match="expected a mapping"):
        resolve(DemoConfig, yaml_path=y)


@dataclass
class InnerConfig:
    width: int = option(8, "layer width")
    tags: list[str] = option([], "tags")
    facts: int = recorded(0, "filled in by the code")


@dataclass
class OuterConfig:
    inner: InnerConfig = nested(InnerConfig, "the inner block", width=16)
    steps: int = option(10, "training steps")

    PRESETS = {"tiny": {"inner": {"tags": ["a"]}, "steps": 2}}


def test_a_nested_config_is_set_by_mapping_dotted_or_bare_key(tmp_path: Path) -> None:
    assert OuterConfig().inner.width == 16  # the owner's default of the nested field
    tiny = resolve(OuterConfig, "tiny")
    assert (tiny.inner.tags, tiny.inner.width, tiny.steps) == (["a"], 16, 2)  # merged, not reset
    y = tmp_path / "c.yaml"
    y.write_text("inner:\n  width: 4\n")
    for over in ({"width": "3"}, {"inner.width": 3}, {"inner": {"width": 3}}):
        cfg = resolve(OuterConfig, "tiny", y, over)
        assert (cfg.inner.width, cfg.inner.tags) == (3, ["a"])
    assert resolve(OuterConfig, yaml_path=y).inner.width == 4
    assert resolve(OuterConfig, overrides={"inner": InnerConfig(width=1)}).inner.width == 1
    assert to_dict(tiny) == {"inner": {"width": 16, "tags": ["a"]}, "steps": 2}  # no recorded


def test_nested_flags_use_bare_names_in_their_own_group() -> None:
    p = argparse.ArgumentParser()
    add_config_args(p, OuterConfig)
    assert "OuterConfig.inner (InnerConfig) fields" in p.format_help()
    assert "(default: 16)" in p.format_help() and "--facts" not in p.format_help()
    args = p.parse_args(["--width", "5", "--tags", "x,y", "--steps", "1"])
    cfg = resolve(OuterConfig, overrides=overrides_from_args(args, OuterConfig))
    assert (cfg.inner.width, cfg.inner.tags, cfg.steps) == (5, ["x", "y"], 1)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"inner.depth": 1}, r"InnerConfig: unknown field\(s\) \['depth'\]"),
        ({"facts": 1}, r"unknown field\(s\) \['facts'\]"),  # recorded: not a setting
        ({"inner": 3}, "OuterConfig.inner: expected a mapping"),
    ],
)
def test_bad_nested_overrides_are_clear_errors(overrides: dict, match: str) -> None:
    with pytest.raises(QAnchorError, match=match):
        resolve(OuterConfig, overrides=overrides)


def test_a_config_that_repeats_a_nested_name_is_refused() -> None:
    @dataclass
    class Repeats:
        inner: InnerConfig = nested(InnerConfig, "the inner block")
        width: int = option(1, "declared again")

    with pytest.raises(QAnchorError, match=r"'width' is declared twice \(inner.width and width\)"):
        resolve(Repeats)
