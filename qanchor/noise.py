"""Third-party noise kept off the console at default verbosity; ``-v`` shows all of it.

A ``qanchor`` stage otherwise prints, for a successful run, transformers' "Loading weights" bars
(one per model load), deprecation FutureWarnings from transformers/peft internals, torch's
bf16 ``rms_norm`` dispatch notice and the tokenizer's "Token indices sequence length is longer
than the specified maximum (520 > 512)" (the encoder truncates; the notice is about a call we
never make). None of them asks the user to do anything. Our own warnings and errors, and every
library's errors, still show.
"""

from __future__ import annotations

import os
import sys
import warnings

# Read by transformers / huggingface_hub when they are imported (the CLI imports them lazily,
# after this runs): log errors only, no download/loading bars.
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
NOISY_MODULES = r"(transformers|peft|huggingface_hub|torch|accelerate)(\..*)?$"
NOISY_MESSAGES = (r"Mismatch dtype between input and weight",)  # torch rms_norm under bf16


def quiet_third_party() -> None:
    """Silence the libraries' informational warnings and bars for this process."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=FutureWarning, module=NOISY_MODULES)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=NOISY_MODULES)
    for message in NOISY_MESSAGES:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    if "transformers" in sys.modules:  # already imported: the variable came too late
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
