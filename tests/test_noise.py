"""Third-party noise is filtered at default verbosity; our own warnings still show."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from qanchor.noise import QUIET_ENV, quiet_third_party


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch) -> None:
    """quiet_third_party sets process-wide variables: undo them after each test."""
    for key in QUIET_ENV:
        monkeypatch.delenv(key, raising=False)


def _shown(message: str, category: type[Warning], module: str) -> bool:
    with warnings.catch_warnings(record=True) as seen:  # filters restored on exit
        warnings.simplefilter("always")
        quiet_third_party()
        warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module)
    return bool(seen)


def test_library_deprecations_and_notices_are_hidden() -> None:
    deprecated = "`is_gradient_checkpointing` is deprecated and will be removed in v6."
    assert not _shown(deprecated, FutureWarning, "transformers.modeling_utils")
    assert not _shown("old api", FutureWarning, "peft.tuners.lora")
    dtype = "Mismatch dtype between input and weight: input dtype = c10::BFloat16"
    assert not _shown(dtype, UserWarning, "torch.nn.functional")
    # The tokenizer's "520 > 512" notice and the loading bars are switched off at the source.
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_our_warnings_and_other_library_warnings_still_show() -> None:
    assert _shown("scenario x has one class", UserWarning, "qanchor.tune.prompt")
    assert _shown("something changed", FutureWarning, "qanchor.data.build")
    assert _shown("not converged", UserWarning, "sklearn.linear_model")


def test_a_user_setting_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    quiet_third_party()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"


def test_transformers_imported_afterwards_logs_errors_only_without_bars() -> None:
    """What the CLI does: quiet first, transformers imported lazily in the command."""
    code = (
        "from qanchor.noise import quiet_third_party\n"
        "quiet_third_party()\n"
        "from transformers.utils import logging\n"
        "print(logging.get_verbosity() == logging.ERROR, logging.is_progress_bar_enabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
