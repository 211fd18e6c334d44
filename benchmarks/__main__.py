"""Run every benchmark, each in its own process (so peak memory is per benchmark).

python -m benchmarks            # all
python -m benchmarks pretrain   # those whose module name contains "pretrain"
python -m benchmarks quality -- --seeds 0 --datasets synthetic   # flags after -- go to each one
python -m benchmarks.chain --help   # one benchmark's own flags
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "benchmarks.cli",
    "benchmarks.pretrain_throughput",
    "benchmarks.multi_scenario",
    "benchmarks.feature_reads",
    "benchmarks.scale",
    "benchmarks.service_start",
    "benchmarks.serving_load",
    "benchmarks.quality",
    "benchmarks.chain",
]


def main(argv: list[str]) -> int:
    names, flags = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    if {"-h", "--help"} & set(names):  # not a name filter: it would run every benchmark
        print(__doc__.strip())
        print("benchmarks:", ", ".join(b.removeprefix("benchmarks.") for b in BENCHMARKS))
        return 0
    selected = [b for b in BENCHMARKS if not names or any(a in b for a in names)]
    for module in selected:
        print(f"== {module}", flush=True)
        code = subprocess.call([sys.executable, "-m", module, *flags])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
