"""Adaptive batching: requests that arrive while the model is busy are served in one batch.

    batcher = AdaptiveBatcher(run_jobs, max_size=1024, max_wait_s=0.002, size=len)
    result = batcher.submit(job)      # blocks this request thread until its batch ran

One worker thread owns the model. It takes the first waiting job, then every job that queued
behind it (up to ``max_size`` units, e.g. (user, scenario) pairs), waiting at most
``max_wait_s`` for more, and hands the list to ``run``. Under load the batch grows by itself
(requests pile up during the previous batch); when idle a request waits ``max_wait_s`` at most.

Why not BentoML's ``batchable`` APIs: they merge requests before our code sees them, so one
request's unknown user or scenario would fail every request merged with it, and a failure can
only be one status for all. Here ``run`` returns a result *or an exception per job*, so each
request keeps its own answer (200, 404, 400, ...).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

J = TypeVar("J")

RunJobs = Callable[[list[J]], list[Any]]  # one result or Exception per job, in order


class AdaptiveBatcher(Generic[J]):
    """Merges concurrently submitted jobs into batches run by one worker thread."""

    def __init__(
        self,
        run: RunJobs,
        max_size: int,
        max_wait_s: float = 0.002,
        size: Callable[[J], int] = lambda _: 1,
    ) -> None:
        self.run, self.max_size, self.max_wait_s, self.size = run, max_size, max_wait_s, size
        self._queue: queue.Queue[tuple[J, Future]] = queue.Queue()
        self._held: tuple[J, Future] | None = None  # a job that did not fit the last batch
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = self.jobs = 0

    def submit(self, job: J) -> Any:
        """Run ``job`` in the next batch; returns its result or raises its exception."""
        self._start()
        fut: Future = Future()
        self._queue.put((job, fut))
        return fut.result()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="qanchor-batcher", daemon=True
                )
                self._thread.start()

    def _next_batch(self) -> list[tuple[J, Future]]:
        first = self._held or self._queue.get()
        self._held = None
        batch, total = [first], self.size(first[0])
        deadline = time.monotonic() + self.max_wait_s
        while total < self.max_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if total + self.size(item[0]) > self.max_size:
                self._held = item  # first in line for the next batch
                break
            batch.append(item)
            total += self.size(item[0])
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                results = self.run([job for job, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} jobs")
            except Exception as exc:  # a bug in run: fail this batch, keep serving
                results = [exc] * len(batch)
            self.batches, self.jobs = self.batches + 1, self.jobs + len(batch)
            for (_, fut), res in zip(batch, results, strict=True):
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
