"""What a person watching ``make run`` sees: one line per stage, progress bars, nothing else.

A ``dag.test()`` run prints Airflow's task bookkeeping, KFP's executor inputs, library warnings
and (on a successful run) an ``[error] XCom not found`` that is how Airflow finds the end of a
mapped task's results: ~570 lines for a tiny run. :class:`RunConsole` reads that stream, keeps
every line in a log file, and shows only

- ``HH:MM:SS  stage  started`` / ``... done in 12.3 s`` (or ``FAILED``) per task,
- the stages' progress bars (redrawn in place on a terminal; elsewhere a line at 25, 50, 75
  and 100%),
- the gate's decision and the outcome, and the lines the run itself prints for people
  (marked with :data:`SAY`),

and on failure the tail of the log. ``-v`` shows everything, as before.
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import TextIO

SAY = "QANCHOR| "  # prefix of a line meant for the person at the console
DECISION = re.compile(r"^(gate|outcome): ")  # what notify prints (stages.notification)
START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
FAILED = re.compile(r"Task \S*'([\w-]+)'\S* finished with status \S*FAILURE")
BAR = re.compile(r"^\s*([\w .-]{1,40}):\s+(\d{1,3})%\|")
BAR_WHOLE = re.compile(
    r"^\s*[\w .-]{1,40}:\s+\d{1,3}%\|[^|]*\|[^\[\n]*\[[^\]]*\]"
)  # up to its stats
TAIL_LINES = 40
MILESTONE = 25  # percent between a bar's lines when the console is not a terminal


class RunConsole:
    """Feed it the run's output line by line; it writes the log and prints the summary."""

    def __init__(self, log_path: Path, out: TextIO | None = None) -> None:
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.log_path.open("w", encoding="utf-8")
        self.out = out or sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.started: dict[str, float] = {}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.bar_open = False  # a progress bar is drawn on the current terminal line
        self.bars_done: set[str] = set()  # finished bars (tqdm draws 100% twice: last step, close)
        self.shown_at: dict[str, int] = {}  # per bar, the last milestone printed (not a terminal)
        self.failed = False

    def feed(self, line: str) -> None:
        """One line of the run's output (without its newline)."""
        self.log.write(line + "\n")
        self.tail.append(line)
        self._show(line)

    def _show(self, line: str) -> None:
        # A bar is not ended by a newline: the next line written (a log record) continues it.
        if (whole := BAR_WHOLE.match(line)) and line[whole.end() :].strip():
            self._show(whole.group(0))
            self._show(line[whole.end() :].strip())
        elif line.startswith(SAY):
            self._print(line[len(SAY) :])
        elif DECISION.match(line):
            self._print(line)
        elif m := START.search(line):
            self.started[_task(m)] = time.monotonic()
            self.bars_done.clear()
            self.shown_at.clear()
            self._print(f"{_clock()}  {_task(m):<12} started")
        elif m := END.search(line):
            seconds = time.monotonic() - self.started.pop(_task(m), time.monotonic())
            self._print(f"{_clock()}  {_task(m):<12} done in {seconds:.1f} s")
        elif m := FAILED.search(line):
            self.failed = True
            self._print(f"{_clock()}  {m.group(1):<12} FAILED")
        elif (m := BAR.match(line)) and m.group(1) not in self.bars_done:
            if int(m.group(2)) >= 100:
                self.bars_done.add(m.group(1))
            self._bar(m.group(1), line.strip(), int(m.group(2)))

    def close(self, ok: bool) -> None:
        """Finish the log; after a failure print its tail and where the whole log is."""
        self.log.close()
        if not ok:
            self._print(f"--- last {len(self.tail)} lines of the log ---")
            for line in self.tail:
                self._print(line)
        self._print(f"full log: {self.log_path}")

    def _bar(self, name: str, text: str, percent: int) -> None:
        if self.tty:  # redraw in place; the next ordinary line starts below it
            self.out.write("\r\033[K" + text[:160])
            self.out.flush()
            self.bar_open = percent < 100
            if percent >= 100:
                self.out.write("\n")
            return
        # A log file or a pipe: the bar's state once past each quarter, so a long stage still
        # shows it is moving, in at most four lines.
        milestone = percent // MILESTONE * MILESTONE
        if milestone > self.shown_at.get(name, 0):
            self.shown_at[name] = milestone
            self._print(text[:160])

    def _print(self, text: str) -> None:
        if self.bar_open:
            self.out.write("\n")
            self.bar_open = False
        self.out.write(text + "\n")
        self.out.flush()


def _task(m: re.Match) -> str:
    task, index = m.group(1), int(m.group(2))
    return task if index < 0 else f"{task}[{index}]"


def _clock() -> str:
    return time.strftime("%H:%M:%S")
