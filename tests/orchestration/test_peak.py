"""Per-stage peak memory: a block's own peak, not the process's lifetime maximum."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from qanchor.orchestrate.peak import PeakMemory


def test_a_block_reports_its_own_peak_not_an_earlier_one() -> None:
    with PeakMemory() as big:
        block = np.ones(300 << 17)  # 300 MiB of float64, touched, alive until the block ends
    del block
    with PeakMemory() as small:
        np.ones(1 << 17).sum()  # 1 MiB
    assert big.mb > small.mb + 200  # ru_maxrss would report the first peak for both


def test_children_count() -> None:
    # The child lives > 2 listings of the children (one per CHILDREN_EVERY second).
    code = "import numpy as np, time; a = np.ones(200 << 17); time.sleep(2.5)"
    with PeakMemory() as alone:
        pass
    with PeakMemory(interval=0.02) as with_child:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert with_child.mb > alone.mb + 150


def test_freed_heap_goes_back_to_the_system() -> None:
    # Many small buffers (below glibc's mmap threshold) freed, one kept after them: the heap
    # cannot shrink from its top, so the freed ~200 MiB stay resident until trimmed.
    import psutil

    from qanchor.memory import release_memory

    proc = psutil.Process()
    chunks = [bytearray(b"x" * 2000) for _ in range(100_000)]
    pin = bytearray(b"y" * 2000)
    del chunks
    held = proc.memory_info().rss
    assert release_memory()  # glibc here (Linux CI)
    assert proc.memory_info().rss < held - (150 << 20)
    del pin
