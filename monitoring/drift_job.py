"""The drift job: ``qanchor drift`` with this directory's thresholds and Evidently workspace.

    python monitoring/drift_job.py --reference data/built --current data/built-latest \
        --out runs/drift/2026-04-01 [--model runs/model] [--smtp env]

Any ``qanchor drift`` flag works; ``--config`` and ``--workspace`` default to
``monitoring/drift.yaml`` and ``monitoring/workspace`` (what ``make monitor-ui`` opens).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    from qanchor.cli import main as qanchor

    defaults = {"--config": HERE / "drift.yaml", "--workspace": HERE / "workspace"}
    extra = [x for flag, path in defaults.items() if flag not in argv for x in (flag, str(path))]
    return qanchor(["drift", *argv, *extra])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
