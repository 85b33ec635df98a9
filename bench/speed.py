"""How fast this machine's CPUs run right now: a fixed unit of pure-Python work, timed in the
CPU time of the thread that runs it.

CPU time leaves out the waits for a CPU (those are the scheduler's and the hypervisor's steal),
so a unit that takes longer means each instruction ran slower: on a shared VM another guest on
the same physical core, or a lower clock (the run's own load moves it too: compare units at the
same offered load). On the 2-vCPU VM of docs/performance.md a unit three times this one took
29–36 ms and, ten seconds later with the same idle stack, 44–52 ms; a run's CPU per order and
its latencies move with it. `make bench` times a unit with each progress line and reports the
median of its steady window (`cpu_unit_ms`), so two runs can be told apart by the machine they
ran on as well as by the code.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

_LOOP = 100_000
_KEYS = 10_000


def unit_ms() -> float:
    """CPU milliseconds of one fixed unit (integer arithmetic, then a dict of strings)."""
    started = time.thread_time()
    x = 0
    for i in range(_LOOP):
        x = (x * 31 + i) % 1_000_003
    table = {str(i): i + x for i in range(_KEYS)}
    del table
    return (time.thread_time() - started) * 1000


def median_in(series: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """The median of the samples `(time, ms)` taken within [start, end] (None: none was)."""
    inside = [ms for at, ms in series if start <= at <= end]
    return round(statistics.median(inside), 1) if inside else None
