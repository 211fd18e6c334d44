"""How fast the command line answers `--help`: the first thing a newcomer runs.

    python -m benchmarks cli      # -> benchmarks/results/cli.md

Each command runs in a fresh process through the installed `qanchor` entry point (what a user
types), three times; the median wall time is reported with the CPU it was measured on.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, cpu_model

COMMANDS = [
    [], ["data", "synth"], ["data", "build"], ["data", "import"], ["pretrain"], ["tune"],
    ["evaluate"], ["embed"], ["explain"], ["run"], ["drift"], ["features", "push"],
    ["pipeline", "compile"],
]  # fmt: skip
REPEATS = 3
GOAL_S = 1.0


def entry_point() -> list[str]:
    """The `qanchor` console script beside this Python, else the module (same code path)."""
    script = Path(sys.executable).with_name("qanchor")
    if script.is_file():
        return [str(script)]
    found = shutil.which("qanchor")
    return [found] if found else [sys.executable, "-c", "import sys; from qanchor.cli import main; sys.exit(main())"]  # fmt: skip


def time_help(words: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run([*entry_point(), *words, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    rows = [(" ".join(["qanchor", *w, "--help"]), time_help(w)) for w in COMMANDS]
    worst = max(s for _, s in rows)
    lines = [
        "# CLI start-up: `--help` wall time",
        "",
        f"CPU: {cpu_model()}, {REPEATS} fresh processes each, median. Goal: under {GOAL_S:.0f} s.",
        "",
        "| command | seconds |",
        "|---|---:|",
        *[f"| `{cmd}` | {s:.2f} |" for cmd, s in rows],
        "",
        f"Slowest: {worst:.2f} s ({'within' if worst < GOAL_S else 'OVER'} the goal).",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if worst < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
