"""Typed stage configs: dataclasses with help texts, named presets, YAML and CLI overrides.

Every stage (build, pretrain, tune, ...) has one dataclass whose fields carry a default and a
``help`` text. A field may itself be a config (:func:`nested`): ``PretrainConfig.model`` is the
``ModelConfig`` it trains, ``PretrainConfig.runtime`` the ``RuntimeConfig`` that pretraining,
tuning and evaluation share. A config is resolved in this order, later steps winning:

    dataclass defaults -> preset (tiny | small | paper) -> YAML file -> CLI flags

Presets, YAML files and overrides set a field of a nested config by a nested mapping
(``{"model": {"lora_r": 4}}``), a dotted key (``"model.lora_r"``) or its bare name
(``"lora_r"``); a CLI flag is the bare name (``--lora-r``). The names of one config tree are
unique (:func:`settings` refuses a tree that repeats one), so a bare name is never ambiguous.

Example::

    cfg = resolve(BuildConfig, preset="small", yaml_path="build.yaml", overrides={"seed": 3})
    cfg = resolve(PretrainConfig, "tiny", overrides={"encoder_max_length": 32, "runtime.seed": 1})
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from qanchor.errors import QAnchorError

T = TypeVar("T")

PRESETS = ("tiny", "small", "paper")


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with a help text (shown by ``--help`` and in docs)."""
    return _field(default, {"help": help})


def recorded(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse
    """A field the code fills in (from the data or the run) and saves with the config.

    It is a fact, not a setting: no preset, YAML key or flag sets it, and :func:`to_dict` leaves
    it out of a config's settings.
    """
    return _field(default, {"help": help, "recorded": True})


def _field(default: Any, meta: dict[str, Any]) -> Any:
    if isinstance(default, list | dict | set):
        # Mutable defaults need a factory; deepcopy keeps instances independent.
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def nested(cls: type, help: str, **defaults: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A field holding a whole config ``cls``; ``defaults`` are this owner's own defaults of it."""
    return dataclasses.field(
        default_factory=lambda: cls(**copy.deepcopy(defaults)), metadata={"help": help}
    )


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type(cls: type, path: str) -> Any:
    """The annotated type of the field at a dotted ``path`` of ``cls`` (e.g. ``"features.repo"``)."""
    *heads, name = path.split(".")
    for head in heads:
        cls = _field_types(cls)[head]
    return _field_types(cls)[name]


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _walk(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], bool]]:
    """(path, is a nested config) of every setting of ``cls`` and its nested configs."""
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("recorded"):
            continue
        path = (*prefix, f.name)
        yield path, _is_config(hints[f.name])
        if _is_config(hints[f.name]):
            yield from _walk(hints[f.name], path)


def shared_fields(cls: type, **values: Any) -> dict[str, Any]:
    """The run-wide ``values`` (by bare name, e.g. ``seed``, ``bf16``) that ``cls`` has a field
    for and that are set (not None): one setting applied to every stage config that has it."""
    return {k: v for k, v in values.items() if v is not None and k in settings(cls)}


@functools.cache
def settings(cls: type) -> Mapping[str, tuple[str, ...]]:
    """Every setting of ``cls`` and of the configs nested in it: bare name -> path.

    Raises:
        QAnchorError: Two fields of the tree share a name (a config re-declares a field of a
            config it nests), so a bare key, a YAML key or a flag would be ambiguous.
    """
    seen: dict[str, tuple[str, ...]] = {}
    for path, _ in _walk(cls):
        if path[-1] in seen:
            where = f"{'.'.join(seen[path[-1]])} and {'.'.join(path)}"
            raise QAnchorError(f"{cls.__name__}: '{path[-1]}' is declared twice ({where})")
        seen[path[-1]] = path
    leaves = {path[-1]: path for path, is_config in _walk(cls) if not is_config}
    return types.MappingProxyType(leaves)  # cached: read-only


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


def apply_overrides(cfg: T, overrides: Mapping[str, Any]) -> T:
    """Return a copy of ``cfg`` with ``overrides`` applied; unknown keys are an error.

    A key is a field of ``cfg``, a dotted path into a nested config, or the bare name of a
    nested config's field; a nested config takes a mapping of its own overrides (merged into
    it, not replacing it) or a whole instance.
    """
    cls = type(cfg)
    hints, names = _field_types(cls), settings(cls)
    nests = {f.name for f in dataclasses.fields(cls) if _is_config(hints[f.name])}
    own: dict[str, Any] = {}
    inner: dict[str, dict[str, Any]] = {}
    unknown = []
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if key in nests and isinstance(value, hints[key]):
            own[key] = value
        elif key in nests:
            if not isinstance(value, Mapping):
                msg = f"{cls.__name__}.{key}: expected a mapping of its fields, got {value!r}"
                raise QAnchorError(msg)
            inner.setdefault(key, {}).update(value)
        elif rest and head in nests:
            inner.setdefault(head, {})[rest] = value
        elif key in names and len(names[key]) > 1:
            inner.setdefault(names[key][0], {})[key] = value
        elif key in names:
            own[key] = _coerce(key, value, hints[key])
        else:
            unknown.append(key)
    if unknown:
        raise QAnchorError(
            f"{cls.__name__}: unknown field(s) {sorted(unknown)}; valid fields: {sorted(names)}"
        )
    for name, sub in inner.items():
        own[name] = apply_overrides(own.get(name, getattr(cfg, name)), sub)
    return dataclasses.replace(cfg, **own)


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
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build a config: defaults, then preset, then YAML file, then explicit overrides."""
    settings(cls)  # a tree that repeats a name fails here, whatever sets it
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
    """Expose every setting of ``cls`` as ``--field-name`` (default None = keep config value).

    The settings of a nested config get their bare names (``--lora-r`` for
    ``PretrainConfig.model.lora_r``), in an option group of their own.
    """
    defaults = cls()
    groups: dict[tuple[str, ...], Any] = {}  # option group of each (nested) config
    for name, path in settings(cls).items():
        owner = _get(defaults, path[:-1])
        if path[:-1] not in groups:
            where = ".".join((cls.__name__, *path[:-1]))
            kind = "" if owner is defaults else f" ({type(owner).__name__})"
            title = f"{where}{kind} fields (override preset and --config)"
            groups[path[:-1]] = parser.add_argument_group(title)
        meta = next(f for f in dataclasses.fields(owner) if f.name == name).metadata
        try:
            groups[path[:-1]].add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                default=None,
                help=f"{meta.get('help', '')} (default: {getattr(owner, name)})",
            )
        except argparse.ArgumentError:
            continue  # argparse refuses a flag the stage declared itself: the stage's flag wins


def _get(cfg: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        cfg = getattr(cfg, name)
    return cfg


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The config settings that were given on the command line (keyed by bare name)."""
    names = settings(cls)
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config's settings (for manifests); :func:`resolve` reads it back.

    Nested configs become nested dicts; recorded fields (facts, not settings) are left out.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if not f.metadata.get("recorded"):
            value = getattr(cfg, f.name)
            out[f.name] = to_dict(value) if _is_config(type(value)) else copy.deepcopy(value)
    return out
