"""Import the model stages' stack once, so its bytecode is on disk before a stage needs it.

``make run`` starts ``python -m qanchor.warm`` in the background beside the first stages (build
and materialize keep one core busy, not two). Bytecode is written by the first process to import
a module, and no earlier stage imports torch, transformers, peft or scikit-learn: on a fresh
machine the pretraining process compiled them itself and reached the model conversion 60 s
after it started; with this beside build and materialize, 37 s (AMD EPYC, 2 cores, two fresh
`make run`s an hour apart). Importing is all this does; nothing is loaded or computed.
"""

from __future__ import annotations

import importlib

# What the model stages (pretrain, tune, evaluate, embed) import, directly or lazily.
MODULES = (
    "torch",
    "peft",
    "gguf",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.llama.modeling_llama",
    "transformers.models.bert.modeling_bert",
    "transformers.modeling_gguf_pytorch_utils",
    "sklearn.feature_extraction.text",
    "sklearn.decomposition",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "sklearn.metrics",
    "lightgbm",
    "matplotlib.pyplot",
    "qanchor.model.pretrain",
    "qanchor.model.artifact",
    "qanchor.tune.prompt",
    "qanchor.eval.evaluate",
    "qanchor.infer.engine",
)


def main() -> None:
    for name in MODULES:
        importlib.import_module(name)


if __name__ == "__main__":
    main()
