"""Peak resident memory of one stretch of work: each stage of ``qanchor run``.

``ru_maxrss`` only grows over a process's life, so the peak of a stage that follows a bigger one
cannot be read from it. A daemon thread samples the resident set of this process and its
children (a stage's worker processes) instead, every ``interval`` seconds::

    with PeakMemory() as peak:
        stages.evaluate(...)
    peak.mb   # the largest sample, in MiB

A spike shorter than the interval can be missed (50 ms is far below any stage's allocations), and
so can a child process that lives less than a second (children are listed once a second).
"""

from __future__ import annotations

import contextlib
import itertools
import threading

import psutil

CHILDREN_EVERY = 1.0  # seconds between listings of the child processes


class PeakMemory:
    """The largest resident set (this process + children) seen while the block runs."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.bytes = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-memory")
        self._proc = psutil.Process()

    @property
    def mb(self) -> float:
        return round(self.bytes / (1 << 20), 1)

    def _rss(self, children: list[psutil.Process] | None = None) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True) if children is None else children:
            with contextlib.suppress(psutil.Error):  # it ended between the listing and the read
                total += child.memory_info().rss
        return total

    def _sample(self) -> None:
        # Listing the children scans every process in /proc: it cost ~5% of a core at 50 ms,
        # taken from the stage it measures. The list is refreshed every CHILDREN_EVERY seconds;
        # worker processes live for minutes.
        every = max(1, round(CHILDREN_EVERY / self.interval))
        for k in itertools.count():
            if k % every == 0:
                children = self._proc.children(recursive=True)
            self.bytes = max(self.bytes, self._rss(children))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        self.bytes = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self._rss())
