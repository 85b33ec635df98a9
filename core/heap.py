"""The cyclic garbage collector of a long-running platform process (docs/adr/ADR-015).

A started actor holds ~104,000 objects the collector tracks (Ray, aiokafka, psycopg, pydantic,
its own state), nearly all of them for its whole life. With CPython's default thresholds
(700, 10, 10) a stage at 330 orders/s ran ~10 young collections a second and, every 20–30 s, a
full one that walks all of those objects: 75–190 ms in which the stage handled nothing. Ray
Serve already freezes its replicas' start-up objects (`RAY_SERVE_FREEZE_GC_ON_STARTUP`), not
the actors'.

`settle` runs once a process has started: it collects what the start left, moves the rest into
the permanent generation (`gc.freeze`, never walked again) and raises the first generation's
threshold to `GC_GEN0_THRESHOLD`. That threshold counts tracked objects allocated minus those
freed; a request's or a batch's objects are freed by reference counting when it ends, so they
seldom add up to it. Cyclic garbage is never freed that way: it still counts, and is collected.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_GENERATIONS = 3


class GcPauses:
    """Every collection of this process after `settle`: count, total and longest pause per
    generation (read by `make stacks` through an actor's `heap()`)."""

    def __init__(self) -> None:
        self.count = [0] * _GENERATIONS
        self.total_ms = [0.0] * _GENERATIONS
        self.longest_ms = [0.0] * _GENERATIONS
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        ms = (time.perf_counter() - self._started) * 1000
        self.count[generation] += 1
        self.total_ms[generation] += ms
        self.longest_ms[generation] = max(self.longest_ms[generation], ms)

    def report(self) -> dict[str, Any]:
        return {
            "collections": list(self.count),
            "pauseMsTotal": [round(ms, 1) for ms in self.total_ms],
            "pauseMsLongest": [round(ms, 1) for ms in self.longest_ms],
            "tracked": len(gc.get_objects()),
            "frozen": gc.get_freeze_count(),
            "thresholds": list(gc.get_threshold()),
        }


_pauses: GcPauses | None = None


def settle(gen0_threshold: int) -> GcPauses:
    """Freeze what the process's start left and raise the young generation's threshold; from
    then on, count the collections. Idempotent: a second call only collects and freezes what
    came since."""
    global _pauses
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    if _pauses is None:
        _pauses = GcPauses()
        gc.callbacks.append(_pauses)
    return _pauses


def report() -> dict[str, Any] | None:
    """The collections since `settle` (None before it ran in this process)."""
    return _pauses.report() if _pauses is not None else None
