"""CPU priority of the pipeline's actors on a box they share with the gateway (ADR-007, second
amendment): the launcher's tuning, not the actors'.

`cluster/deploy.py` connects with `on_worker_start` as the job's worker setup hook and creates
the pipeline's actors (relay, shards, shipping, notification) with `STAGE_NICENESS_ENV` in their
environment. Ray runs the hook in each of the job's worker processes before the process takes
its actor, so an actor that Ray restarts after a crash gets it again. The gateway replica, Ray's
own processes and any worker without the variable keep the niceness Ray started them at
(`RAY_WORKER_NICENESS`).

On Linux niceness belongs to each thread, and a new thread starts with its creator's: the hook
moves every thread the process has, and the actor's event loop, started later, follows.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

STAGE_NICENESS_ENV = "ORDERS_STAGE_NICENESS"
SETUP_HOOK = "cluster.priority.on_worker_start"


def stage_niceness(environ: Mapping[str, str]) -> int:
    """`STAGE_NICENESS` of the launcher's environment: how many steps of niceness below the
    gateway the pipeline's actors run (0..19, default 5; 0 = the same priority)."""
    from core.settings import SettingsError  # here: a worker's hook imports this module alone

    raw = environ.get("STAGE_NICENESS", "5")
    value = int(raw) if raw.isdigit() else -1
    if not 0 <= value <= 19:
        raise SettingsError(f"STAGE_NICENESS must be an integer from 0 to 19, not {raw!r}")
    return value


def stage_runtime_env(niceness: int) -> dict[str, dict[str, str]]:
    """The runtime_env a pipeline actor is created with (Ray merges it into the job's)."""
    return {"env_vars": {STAGE_NICENESS_ENV: str(niceness)}} if niceness else {}


def on_worker_start() -> None:
    """Ray's worker setup hook of the deploying job: a worker that is to host a pipeline actor
    moves every thread `ORDERS_STAGE_NICENESS` steps below where Ray started it. Raising
    niceness needs no privilege; should the kernel refuse anyway, the worker keeps its
    priority and says so (an exception here would stop the worker, and with it the actor)."""
    steps = int(os.environ.get(STAGE_NICENESS_ENV, "0") or 0)
    if steps <= 0:
        return
    target = os.getpriority(os.PRIO_PROCESS, 0) + steps
    try:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.setpriority(os.PRIO_PROCESS, int(tid), target)
    except OSError as exc:
        log.warning("stage worker keeps its niceness (%d refused: %s)", target, exc)
