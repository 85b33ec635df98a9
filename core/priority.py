"""CPU priority of a process: the accept path ahead of the batch pipeline (docs/adr/ADR-007).

On Linux niceness belongs to each thread; a new thread starts with its creator's. So a process
changes every thread it has, and the threads it starts later follow.
"""

from __future__ import annotations

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
