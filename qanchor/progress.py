"""Progress bars for the long stages (pretrain, tune, evaluate, embed) that do not flood logs.

On a terminal a bar redraws ten times a second. Anywhere else (a log file, a pipe, an Airflow
task log) tqdm writes a new ``\\r``-separated copy of the bar on every redraw; there a bar redraws
at most every :data:`QUIET_INTERVAL` seconds, so an hour of pretraining leaves ~120 copies instead
of tens of thousands, and a short stage leaves only its first and last. A ``mininterval`` passed in wins, then
``TQDM_MININTERVAL`` (``make run`` sets it when it redraws the bars on a terminal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

QUIET_INTERVAL = 30.0  # seconds between redraws when stderr is not a terminal


def bar(iterable: Iterable | None = None, *, desc: str, file: Any = None, **kwargs: Any):
    """A ``tqdm`` bar on stderr (or ``file``) with a redraw interval fit for where it goes.

    Args:
        iterable: what to iterate over, as for ``tqdm``; None for a manually updated bar.
        desc: the stage's name, shown first (``make run`` recognises bars by it).
        file: the stream (default: stderr).
        **kwargs: any other ``tqdm`` argument (total, unit, disable, ...).
    """
    from tqdm.auto import tqdm

    stream = file if file is not None else sys.stderr
    if "mininterval" not in kwargs:
        # tqdm reads TQDM_* once, when imported; read it here so a later setting counts too.
        tty = bool(getattr(stream, "isatty", lambda: False)())
        env = os.environ.get("TQDM_MININTERVAL")
        kwargs["mininterval"] = float(env) if env else 0.1 if tty else QUIET_INTERVAL
    return tqdm(iterable, desc=desc, file=stream, **kwargs)
