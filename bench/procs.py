"""CPU used by each component of the stack, from psutil (the copy that Ray ships).

Processes are grouped by what they are (gateway, each actor class, Kafka, Postgres, Redis, Ray's
own daemons, the load generator); a sampler keeps per-process CPU times and sums the deltas.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from adapters import benchdb

_RAY_ACTOR_GROUPS = {
    "ServeReplica": "gateway:replica",
    "ProxyActor": "gateway:proxy",
    "HAProxyManager": "gateway:proxy",
    "ServeController": "serve-controller",
    "InventoryShard": "actor:inventory",
    "PaymentShard": "actor:payment",
    "ShippingActor": "actor:shipping",
    "NotificationActor": "actor:notification",
    "OutboxRelay": "actor:outbox-relay",
}

# Ray's own workers (`ray::<name>`): not actors of the platform
_RAY_OWN = frozenset({"DashboardAgent", "RuntimeEnvAgent", "JobSupervisor", "StatsActor"})


def psutil_module() -> Any:
    """Import psutil, from Ray's `thirdparty_files` when it is not installed on its own."""
    try:
        return importlib.import_module("psutil")
    except ImportError:
        spec = importlib.util.find_spec("ray")
        if spec is None or not spec.submodule_search_locations:
            raise
        sys.path.append(os.path.join(list(spec.submodule_search_locations)[0], "thirdparty_files"))
        return importlib.import_module("psutil")


def renice_self(niceness: int) -> int:
    """Give every thread of this process `niceness` (on Linux niceness is per thread); returns
    the niceness it has now. Below the current value needs root or CAP_SYS_NICE: without them
    the process keeps its niceness (the report shows the generator's send lag either way)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness == current:
        return current
    for tid in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except PermissionError:
            return current
    return os.getpriority(os.PRIO_PROCESS, 0)


def replica_niceness(default: int = 0) -> int:
    """The niceness of the Serve gateway replica (Ray's workers: 15 unless configured)."""
    for proc in psutil_module().process_iter(["cmdline", "nice"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and str(cmd[0]).startswith("ray::ServeReplica"):
            return int(proc.info["nice"])
    return default


def classify(name: str, cmdline: list[str], username: str) -> str:
    """The component a process belongs to."""
    head = cmdline[0] if cmdline else name
    joined = " ".join(cmdline[:3])
    if head.startswith("ray::"):
        kind = head[5:].split(":")[0].split(".")[0].split()[0] if len(head) > 5 else ""
        return _RAY_ACTOR_GROUPS.get(kind) or _other_ray_worker(kind)
    if name == "haproxy":
        return "gateway:haproxy"
    if name == "wrk":
        return "loadgen"
    if name == "postgres" or username == "postgres":
        return "postgres"
    if name.startswith("redis-server"):
        return "redis"
    if name == "java" and "kafka.Kafka" in " ".join(cmdline):
        return "kafka"
    if "bench.uvicorn_app" in " ".join(cmdline):
        return "uvicorn-baseline"
    if "/ray/" in joined or name in ("raylet", "gcs_server") or name.startswith("ray-dashboard"):
        return "ray-system"
    return "other"


def _other_ray_worker(kind: str) -> str:
    """A Ray worker of a class not listed above: Ray's own (idle workers, agents) or a new
    actor class of the platform, which then shows under its own name instead of in Ray's."""
    if not kind or not kind[0].isupper() or kind in _RAY_OWN or kind.startswith("IDLE"):
        return "ray-system"
    return f"actor:{kind}"


@dataclass
class CpuSampler:
    """Accumulates CPU seconds per component between `start()` and each `sample()`."""

    own: dict[int, str] = field(default_factory=dict)  # our pids → "loadgen" or "bench"
    totals: dict[str, float] = field(default_factory=dict)
    series: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    # (sample time, cores the hypervisor took from the whole machine since the previous sample)
    steal_series: list[tuple[float, float]] = field(default_factory=list)
    # per process, (pid, start time): a pid the kernel reuses is another process
    _last: dict[tuple[int, float], float] = field(default_factory=dict)
    _steal_last: float = 0.0
    _groups: dict[tuple[int, float], str] = field(default_factory=dict)
    _t0: float = 0.0
    _t_last: float = 0.0
    _ps: Any = None

    def start(self) -> None:
        self._ps = psutil_module()
        self.totals.clear()
        self.series.clear()
        self.steal_series.clear()
        self._last.clear()
        self._t0 = self._t_last = time.time()
        self._steal_last = self._stolen_s()
        self._scan(record=False)

    @property
    def started(self) -> float:
        """When `start()` was last called (the first sample covers the time since)."""
        return self._t0

    def sample(self) -> dict[str, float]:
        """CPU use (in cores) per component since the previous sample; adds to the totals."""
        deltas = self._scan(record=True)
        now = time.time()
        span = max(now - self._t_last, 1e-6)
        self._t_last = now
        cores = {k: v / span for k, v in deltas.items()}
        self.series.append((now, cores))
        stolen = self._stolen_s()
        self.steal_series.append((now, max(stolen - self._steal_last, 0.0) / span))
        self._steal_last = stolen
        return cores

    @property
    def steal_cores(self) -> float:
        """Cores the hypervisor took in the last sample's interval (0 before the first)."""
        return self.steal_series[-1][1] if self.steal_series else 0.0

    def _stolen_s(self) -> float:
        """CPU seconds the hypervisor gave to others while this machine's CPUs wanted to run
        (`steal` of /proc/stat; 0 where the kernel does not count it)."""
        return float(getattr(self._ps.cpu_times(), "steal", 0.0))

    def cores(self) -> dict[str, float]:
        """Average cores per component over the whole sampled window."""
        span = max(self._t_last - self._t0, 1e-6)
        return {k: round(v / span, 3) for k, v in sorted(self.totals.items())}

    def _scan(self, *, record: bool) -> dict[str, float]:
        deltas: dict[str, float] = {}
        seen: dict[tuple[int, float], float] = {}
        attrs = ["pid", "name", "cmdline", "username", "cpu_times", "create_time"]
        for proc in self._ps.process_iter(attrs):
            info = proc.info
            times = info.get("cpu_times")
            if times is None:
                continue
            pid = int(info["pid"])
            # the start time (field 22 of /proc/<pid>/stat, as psutil reads it) tells a reused
            # pid from the process that had it before
            born = float(info.get("create_time") or 0.0)
            key = (pid, born)
            used = float(times.user + times.system)
            seen[key] = used
            group = self.own.get(pid) or self._groups.get(key)
            if pid in benchdb.OWN_BACKENDS:  # a Postgres backend serving the benchmark's reads
                group = "bench"
            if group is None:
                cmdline = list(info.get("cmdline") or [])
                group = classify(
                    str(info.get("name") or ""), cmdline, str(info.get("username") or "")
                )
                if _settled(cmdline):
                    self._groups[key] = group
            if record:
                # a process born since the last scan counts from 0; one we could not read
                # before counts from now on
                previous = self._last.get(key, 0.0 if born >= self._t_last - 0.5 else used)
                deltas[group] = deltas.get(group, 0.0) + max(used - previous, 0.0)
        self._last = seen
        self._groups = {k: g for k, g in self._groups.items() if k in seen}
        for group, secs in deltas.items():
            self.totals[group] = self.totals.get(group, 0.0) + secs
        return deltas


def _settled(cmdline: list[str]) -> bool:
    """Whether a process's group may be kept: not while it may still change what it is. An idle
    Ray worker becomes an actor when one (re)starts, and a Ray worker just started runs
    `default_worker.py` until it retitles itself `ray::<Class>`."""
    if cmdline and str(cmdline[0]).startswith("ray::IDLE"):
        return False
    return not any("default_worker.py" in str(arg) for arg in cmdline)
