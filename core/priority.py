"""CPU of a process: priority of the accept path ahead of the batch pipeline
(docs/adr/ADR-007), and the garbage collector of a hot process.

On Linux niceness belongs to each thread; a new thread starts with its creator's. So a process
changes every thread it has, and the threads it starts later follow.
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger(__name__)


def renice_process(niceness: int, who: str) -> int:
    """Give every thread of this process `niceness`; returns the niceness the process has now.

    Raising niceness (lower priority) is always allowed; lowering it below the current value
    needs root or CAP_SYS_NICE. Without them the process keeps its niceness and says so once.
    """
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness == current:
        return current
    for tid in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except PermissionError:
            log.info("%s keeps niceness %d (%d needs root or CAP_SYS_NICE)", who, current, niceness)
            return current
    return os.getpriority(os.PRIO_PROCESS, 0)


def settle_gc(gen0_threshold: int, *, freeze: bool) -> None:
    """Call once start-up is done: with `freeze`, what is alive now is never scanned again (it
    stays in memory as it would anyway); the youngest generation is then collected every
    `gen0_threshold` net allocations. The older generations keep their ratios."""
    if freeze:
        gc.collect()
        gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
