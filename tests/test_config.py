"""Typed configs: defaults, presets, YAML and CLI overrides, and clear errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from qanchor.config import add_config_args, option, overrides_from_args, resolve
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
