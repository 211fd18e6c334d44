"""Batch inference over every CPU core from one process: one Python thread per torch thread.

A batch job's rows are cut into contiguous parts, one per torch thread the process was given,
and each part runs in its own Python thread with torch set to one thread; torch releases the
GIL inside its kernels, so the parts run side by side. The suffix passes' matrices (64 rows of
576 columns) are too small to keep two threads of one matmul busy. Measured on 2 cores
(AMD EPYC, fp32, the `small` model, 256 users x 12 tuned suffixes): one thread 6.9 users/s,
one process with two torch threads 11.5, two Python threads of one torch thread each 14.7.
Each part is batched on its own, so results equal the unsplit call's to float rounding
(:func:`qanchor.infer.engine.embed_rows_shown` gives each part a share of one block, so the
users in flight and the memory they hold stay one block's).

    vecs = split_rows(lambda part: emb.embed_rows(part, suffixes).numpy(), rows, emb.device)
    np.concatenate(vecs)

Inputs must be read-only while the parts run (tables, loaded vectors, frozen weights); the
prefix cache locks its own state. Serving does not use this: its requests already run
concurrently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
R = TypeVar("R")


def cores() -> int:
    """The cores this process may run on (its CPU affinity; a container's share, not the
    host's count where the platform reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """This process's torch threads set to ``n`` for the block."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def workers(device: torch.device, rows: int, min_rows: int = 32) -> int:
    """Parts to cut ``rows`` into: one per torch thread on a CPU (none on a GPU, which one
    thread keeps busy), no part under ``min_rows`` (a smaller batch wastes more than a second
    thread gains)."""
    import torch

    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), rows // min_rows))


def split_rows(
    fn: Callable[[list[T]], R], rows: Sequence[T], device: torch.device, min_rows: int = 32
) -> list[R]:
    """``fn`` over contiguous parts of ``rows``, side by side (:func:`workers` parts), in order."""
    rows = list(rows)
    n = workers(device, len(rows), min_rows)
    if n == 1:
        return [fn(rows)]
    size = -(-len(rows) // n)
    return map_threads(fn, [rows[k : k + size] for k in range(0, len(rows), size)], device)


def map_threads(fn: Callable[[T], R], items: Sequence[T], device: torch.device) -> list[R]:
    """``fn`` over each of ``items`` (independent tasks: tuning's scenario groups), one Python
    thread per torch thread taking the next item when it is done, results in order.

    The caller's grad mode carries into the threads (torch keeps it per thread).
    """
    import torch

    n = workers(device, len(items), 1)
    if n == 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    grad = torch.is_grad_enabled()

    def run(x: T) -> R:
        with torch.set_grad_enabled(grad):
            return fn(x)

    with torch_threads(1), ThreadPoolExecutor(n, thread_name_prefix="qanchor") as pool:
        return list(pool.map(run, items))
