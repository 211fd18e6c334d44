"""Run every benchmark, each in its own process (so peak memory is per benchmark).

python -m benchmarks            # all
python -m benchmarks pretrain   # those whose module name contains "pretrain"
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "benchmarks.pretrain_throughput",
    "benchmarks.multi_scenario",
    "benchmarks.feature_reads",
    "benchmarks.scale",
    "benchmarks.serving_load",
]


def main(argv: list[str]) -> int:
    selected = [b for b in BENCHMARKS if not argv or any(a in b for a in argv)]
    for module in selected:
        print(f"== {module}", flush=True)
        code = subprocess.call([sys.executable, "-m", module])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
