"""`renice_process` moves every thread of the process, and threads started later follow."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_CHILD = """
import json, os, threading
from core.priority import renice_process

def nices():
    out = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:  # a thread that has just ended
            continue
        out.add(int(stat[stat.rfind(")") + 2 :].split()[16]))
    return sorted(out)

stop = threading.Event()
before = threading.Thread(target=stop.wait, daemon=True)
before.start()
target = os.getpriority(os.PRIO_PROCESS, 0) + 3
got = renice_process(target, "test")
later = []
thread = threading.Thread(target=lambda: later.append(os.getpriority(os.PRIO_PROCESS, 0)))
thread.start()
thread.join()
print(json.dumps({"target": target, "got": got, "threads": nices(), "later": later[0]}))
stop.set()
before.join()
"""

# Without privileges (as root: after giving them up) lowering niceness is refused.
_UNPRIVILEGED = """
import json, os
from core.priority import renice_process

os.nice(2)
start = os.getpriority(os.PRIO_PROCESS, 0)
if os.geteuid() == 0:
    os.setuid(65534)  # nobody
print(json.dumps({"start": start, "got": renice_process(start - 5, "test")}))
"""


def _run(code: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_every_thread_and_every_later_thread_gets_the_niceness() -> None:
    r = _run(_CHILD)
    assert r["got"] == r["target"]
    assert r["threads"] == [r["target"]]
    assert r["later"] == r["target"]


def test_it_keeps_its_niceness_when_it_may_not_lower_it() -> None:
    r = _run(_UNPRIVILEGED)
    assert r["got"] == r["start"]


_GC = """
import gc, json
from core.priority import settle_gc

alive = [[i] for i in range(10_000)]  # start-up state
settle_gc(12_345, freeze=True)
print(json.dumps({"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}))
"""


def test_settle_gc_freezes_what_start_up_left_and_sets_the_youngest_threshold() -> None:
    r = _run(_GC)
    assert r["threshold"][0] == 12_345
    assert r["threshold"][1:] == [10, 10]  # the older generations keep Python's ratios
    assert r["frozen"] >= 10_000
