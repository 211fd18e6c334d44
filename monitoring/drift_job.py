"""The drift job: ``qanchor drift`` with this directory's thresholds and Evidently workspace.

    .venv/bin/python monitoring/drift_job.py --reference served --model served \
        --current data/built-latest --out runs/drift/2026-04-01 [--smtp env]

Run it with the project's environment (``.venv/bin/python``, made by ``make setup``): it imports
``qanchor``. ``make drift-demo`` runs it on a shifted synthetic world after ``make run``.

Any ``qanchor drift`` flag works; ``--config`` and ``--workspace`` default to
``monitoring/drift.yaml`` and ``monitoring/workspace`` (what ``make monitor-ui`` opens).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    try:
        from qanchor.cli import main as qanchor
    except ImportError:  # run by a Python without the project installed
        print("qanchor is not installed in this Python: run `make setup`, then "
              "`.venv/bin/python monitoring/drift_job.py ...`", file=sys.stderr)  # fmt: skip
        return 2

    defaults = {"--config": HERE / "drift.yaml", "--workspace": HERE / "workspace"}
    extra = [x for flag, path in defaults.items() if flag not in argv for x in (flag, str(path))]
    return qanchor(["drift", *argv, *extra])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
