"""Deployment variables into config fields, read by pydantic-settings.

Each variable names the config field it sets (a dotted path into nested configs) and is typed by
that field, so a value from the environment means what the same value means in YAML or a flag::

    ENV = {"QANCHOR_CACHE_BYTES": "cache_bytes", "QANCHOR_FEATURE_REPO": "features.repo"}
    cfg = apply_overrides(ServingConfig(), read_env(ServingConfig, ENV))

The variable names are an interface (deployment manifests set them): the tables that map them
stay beside the configs they feed (``qanchor.serving.config.ENV``, ``qanchor.monitoring.alert.ENV``).
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from qanchor.config import field_type
from qanchor.errors import QAnchorError


def read_env(cls: type, variables: Mapping[str, str]) -> dict[str, Any]:
    """The values of the set, non-empty ``variables`` (name -> field path of ``cls``), by path.

    Scalars are validated against the field's type here; a list or mapping field takes the
    flags' comma syntax (``a,b``; ``k=v,k2=v2``) and stays a string for ``apply_overrides``.

    Raises:
        QAnchorError: A value does not parse; the message names the variable and the field.
    """
    from pydantic import ValidationError

    model = _settings_model(cls, tuple(variables.items()))
    try:
        values = model()
    except ValidationError as exc:
        err = exc.errors()[0]
        var = str(err["loc"][0])
        raise QAnchorError(f"${var}: cannot read {err['input']!r} as {cls.__name__}."
                           f"{variables[var]} ({err['msg']})") from exc  # fmt: skip
    got = {variables[var]: getattr(values, var.lower()) for var in variables}
    return {path: value for path, value in got.items() if value is not None}


@functools.cache
def _settings_model(cls: type, variables: tuple[tuple[str, str], ...]) -> type:
    """A pydantic-settings class with one optional field per variable, typed by its field."""
    from pydantic import Field, create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Env(BaseSettings):
        # An empty variable is unset (a manifest's `VAR: ""`), as it always was.
        model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    fields: dict[str, Any] = {
        var.lower(): (_scalar(field_type(cls, path)) | None, Field(None, validation_alias=var))
        for var, path in variables
    }
    return create_model(f"{cls.__name__}Env", __base__=Env, **fields)


def _scalar(annotation: Any) -> Any:
    """``annotation``, or ``str`` for a list or mapping (pydantic-settings would want JSON)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    arms = typing.get_args(annotation) if union else (annotation,)
    complex_ = any(typing.get_origin(a) in (list, tuple, dict) for a in arms)
    return str if complex_ else annotation
