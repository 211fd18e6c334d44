"""Batch inference split over Python threads with one torch thread each."""

from __future__ import annotations

import threading

import pytest
import torch

from qanchor.infer.threads import map_threads, split_rows, torch_threads, workers

CPU = torch.device("cpu")


def test_parts_run_side_by_side_in_order_with_the_callers_grad_mode() -> None:
    both = threading.Barrier(2, timeout=30)  # passes only if both parts are in flight at once
    seen = []

    def part(rows: list[int]) -> list[int]:
        both.wait()
        seen.append((threading.current_thread().name, torch.is_grad_enabled(),
                     torch.get_num_threads()))  # fmt: skip
        return rows

    with torch_threads(2):
        with torch.no_grad():
            out = split_rows(part, range(70), CPU)
        assert torch.get_num_threads() == 2  # restored
    assert out == [list(range(35)), list(range(35, 70))]
    assert len({name for name, _, _ in seen}) == 2
    assert [(grad, n) for _, grad, n in seen] == [(False, 1), (False, 1)]


def test_one_part_on_a_gpu_on_one_thread_or_for_few_rows() -> None:
    with torch_threads(2):
        assert workers(torch.device("cuda"), 1000) == 1
        assert workers(CPU, 63) == 1  # two parts would be under 32 rows
        assert workers(CPU, 64) == 2
        assert split_rows(lambda r: threading.current_thread().name, range(10), CPU) == [
            threading.current_thread().name
        ]
        assert split_rows(len, [], CPU) == [0]  # no rows: one call, as unsplit
    with torch_threads(1):
        assert workers(CPU, 1000) == 1


def test_tasks_keep_their_order_and_a_tasks_error_reaches_the_caller() -> None:
    with torch_threads(2):
        assert map_threads(lambda x: x * x, [3, 1, 2], CPU) == [9, 1, 4]

        def fail(x: int) -> int:
            if x == 2:
                raise ValueError("task 2")
            return x

        with pytest.raises(ValueError, match="task 2"):
            map_threads(fail, [1, 2, 3], CPU)
        assert torch.get_num_threads() == 2
