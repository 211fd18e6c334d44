"""Building blocks of the ``qanchor`` argument parser, shared by ``cli`` and ``cli_ops``.

A subcommand of a configured stage exposes every field of its config as a flag (see
:func:`qanchor.config.add_config_args`) plus ``--preset`` and ``--config``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from qanchor.config import PRESETS, add_config_args


def add_stage(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,  # noqa: A002
    func: Callable,
    config_cls: type | None = None,
    required: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with its required path flags and, for a configured stage, every config field."""
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(func=func)
    for flag, text in (required or {}).items():
        p.add_argument(flag, required=True, help=text)
    if config_cls is not None:
        if hasattr(config_cls, "PRESETS"):
            # The training stages' bare defaults are paper scale (hours on a CPU): like
            # `qanchor run`, they take `small` unless told otherwise.
            default = "small" if config_cls.__name__ in SMALL_BY_DEFAULT else None
            p.add_argument(
                "--preset", choices=PRESETS, default=default,
                help=f"named preset of the stage config (default: {default or 'none'})",
            )  # fmt: skip
        p.add_argument("--config", default=None, help="YAML file of config overrides")
        add_config_args(p, config_cls)
    return p


SMALL_BY_DEFAULT = ("BuildConfig", "PretrainConfig", "TuneConfig", "EvalConfig")
