"""`make run` compiles the model stages' imports in the background (qanchor.warm)."""

from __future__ import annotations

import sys

from qanchor import warm


def test_warm_imports_the_model_stack() -> None:
    warm.main()
    assert set(warm.MODULES) <= set(sys.modules)
    assert {"torch", "peft", "transformers.models.llama.modeling_llama"} <= set(warm.MODULES)
