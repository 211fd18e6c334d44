"""Typed stage configs: dataclasses with help texts, named presets, YAML and CLI overrides.

Every stage (build, pretrain, tune, ...) has one dataclass whose fields carry a default and a
``help`` text. A config is resolved in this order, later steps winning:

    dataclass defaults -> preset (tiny | small | paper) -> YAML file -> CLI flags

Example::

    cfg = resolve(BuildConfig, preset="small", yaml_path="build.yaml", overrides={"seed": 3})
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from qanchor.errors import QAnchorError

T = TypeVar("T")

PRESETS = ("tiny", "small", "paper")


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with a help text (shown by ``--help`` and in docs)."""
    meta = {"help": help}
    if isinstance(default, list | dict | set):
        # Mutable defaults need a factory; deepcopy keeps instances independent.
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Coerce a YAML/CLI value to the field's annotated type, with a clear error."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0]) if len(inner) == 1 else value
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if annotation in (int, float, str):
            return annotation(value)
        if origin in (list, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return [_coerce(name, v, args[0]) if args else v for v in items if v != ""]
        if origin is dict and isinstance(value, str):
            pairs = (kv.split("=", 1) for kv in value.split(",") if kv)
            return {k: _coerce(name, v, args[1]) for k, v in pairs}
    except (TypeError, ValueError) as exc:
        raise QAnchorError(f"config field '{name}': cannot read {value!r} as {annotation}") from exc
    return value


def apply_overrides(cfg: T, overrides: dict[str, Any]) -> T:
    """Return a copy of ``cfg`` with ``overrides`` applied; unknown keys are an error."""
    hints = _field_types(type(cfg))
    unknown = sorted(set(overrides) - set(hints))
    if unknown:
        raise QAnchorError(
            f"{type(cfg).__name__}: unknown field(s) {unknown}; valid fields: {sorted(hints)}"
        )
    coerced = {k: _coerce(k, v, hints[k]) for k, v in overrides.items()}
    return dataclasses.replace(cfg, **coerced)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config overrides."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise QAnchorError(f"config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise QAnchorError(f"config file {path}: expected a mapping of field: value")
    return data


def resolve(
    cls: type[T],
    preset: str | None = None,
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Build a config: defaults, then preset, then YAML file, then explicit overrides."""
    cfg = cls()
    if preset:
        presets: dict[str, dict[str, Any]] = getattr(cls, "PRESETS", {})
        if preset not in PRESETS:
            raise QAnchorError(f"unknown preset '{preset}'; choose one of {list(PRESETS)}")
        cfg = apply_overrides(cfg, presets.get(preset, {}))
    if yaml_path:
        cfg = apply_overrides(cfg, load_yaml(yaml_path))
    if overrides:
        cfg = apply_overrides(cfg, {k: v for k, v in overrides.items() if v is not None})
    return cfg


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Expose every field of ``cls`` as ``--field-name`` (default None = keep config value)."""
    group = parser.add_argument_group(f"{cls.__name__} fields (override preset and --config)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        try:
            group.add_argument(
                flag,
                dest=f.name,
                default=None,
                help=f"{f.metadata.get('help', '')} (default: {default})",
            )
        except argparse.ArgumentError:
            continue  # argparse refuses a flag the stage declared itself: the stage's flag wins


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The config fields that were given on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (for manifests)."""
    return dataclasses.asdict(cfg)
