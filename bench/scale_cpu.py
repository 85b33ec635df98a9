"""CPU per host of the namespace harness, read from each host's cgroup (every process a host runs
is in it: Ray's daemons, the actors it restarts, Postgres' backends), and per component within a
host (the processes of its cgroup, classified as `bench.procs` does)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import CpuSampler, classify, psutil_module


@dataclass(frozen=True)
class HostCpu:
    used_s: float  # CPU seconds used by the host's processes since its cgroup was made
    throttled_s: float  # time they were held back by the quota
    throttled_periods: int
    cap: float  # cores (0: no cap)


@dataclass(frozen=True)
class Cgroups:
    """The harness's cgroup directories (`cluster/netns.sh env`: CGROUP_*)."""

    kind: str  # v1 or v2
    cpu_dir: Path
    acct_dir: Path

    @classmethod
    def from_env(cls, info: dict[str, str]) -> Cgroups:
        return cls(info["CGROUP_KIND"], Path(info["CGROUP_CPU_DIR"]), Path(info["CGROUP_ACCT_DIR"]))

    def hosts(self) -> list[str]:
        if not self.cpu_dir.is_dir():
            return []
        return sorted(p.name for p in self.cpu_dir.iterdir() if p.is_dir())

    def pids(self, host: str) -> list[int]:
        try:
            return [int(x) for x in (self.cpu_dir / host / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def read(self, host: str) -> HostCpu:
        stat = _kv(self.cpu_dir / host / "cpu.stat")
        if self.kind == "v1":
            used = int((self.acct_dir / host / "cpuacct.usage").read_text()) / 1e9
            quota = int((self.cpu_dir / host / "cpu.cfs_quota_us").read_text())
            period = int((self.cpu_dir / host / "cpu.cfs_period_us").read_text())
            cap = quota / period if quota > 0 else 0.0
            return HostCpu(
                used, stat.get("throttled_time", 0) / 1e9, stat.get("nr_throttled", 0), cap
            )
        quota_s, period_s = (self.cpu_dir / host / "cpu.max").read_text().split()
        cap = int(quota_s) / int(period_s) if quota_s != "max" else 0.0
        return HostCpu(
            stat.get("usage_usec", 0) / 1e6,
            stat.get("throttled_usec", 0) / 1e6,
            stat.get("nr_throttled", 0),
            cap,
        )

    def read_all(self) -> dict[str, HostCpu]:
        out: dict[str, HostCpu] = {}
        for host in self.hosts():
            try:
                out[host] = self.read(host)
            except (OSError, ValueError):  # a host being removed
                continue
        return out


def _kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


@dataclass
class HostCpuSampler(CpuSampler):
    """A `CpuSampler` whose components are the harness's hosts (`host:<name>`, from the
    cgroups) and the load generator; `parts` keeps, per sample, the cores of each component
    inside each host (`<host>:<component>`), and `throttled` the share of each second a host's
    processes were held back by its quota."""

    cgroups: Cgroups | None = None
    parts: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    throttled: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # CPU-s/s
    box: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # the whole machine
    _box_last: tuple[float, float] = (0.0, 0.0)
    _host_last: dict[str, HostCpu] = field(default_factory=dict)
    _proc_last: dict[int, float] = field(default_factory=dict)
    _proc_group: dict[int, str] = field(default_factory=dict)

    def start(self) -> None:
        self._ps = psutil_module()
        self.totals.clear()
        self.series.clear()
        self.parts.clear()
        self.throttled.clear()
        self.box.clear()
        self.own.setdefault(os.getpid(), "bench")
        self._box_last = _busy_jiffies()
        self._t0 = self._t_last = time.time()
        self._host_last = self._hosts()
        self._proc_last = {pid: t for pid, (_, t) in self._procs().items()}

    def sample(self) -> dict[str, float]:
        now = time.time()
        span = max(now - self._t_last, 1e-6)
        self._t_last = now
        hosts = self._hosts()
        cores: dict[str, float] = {}
        shares: dict[str, float] = {}
        for name, cpu in hosts.items():
            before = self._host_last.get(name)
            if before is not None:
                cores[f"host:{name}"] = max(cpu.used_s - before.used_s, 0.0) / span
                shares[name] = max(cpu.throttled_s - before.throttled_s, 0.0) / span
        self._host_last = hosts
        parts: dict[str, float] = {}
        seen: dict[int, float] = {}
        for pid, (group, used) in self._procs().items():
            seen[pid] = used
            mine = group in ("loadgen", "bench")  # counted from when first seen
            delta = max(used - self._proc_last.get(pid, used if mine else 0.0), 0.0)
            parts[group] = parts.get(group, 0.0) + delta / span
        self._proc_last = seen
        cores["loadgen"] = parts.pop("loadgen", 0.0)
        cores["bench"] = parts.pop("bench", 0.0)
        box = _busy_jiffies()
        busy = (box[0] - self._box_last[0]) / max(box[1] - self._box_last[1], 1e-9)
        self._box_last = box
        self.box.append((now, {"box": busy * (os.cpu_count() or 1)}))
        for name, value in cores.items():
            self.totals[name] = self.totals.get(name, 0.0) + value * span
        self.series.append((now, cores))
        self.parts.append((now, parts))
        self.throttled.append((now, shares))
        return cores

    def _hosts(self) -> dict[str, HostCpu]:
        return self.cgroups.read_all() if self.cgroups is not None else {}

    def _procs(self) -> dict[int, tuple[str, float]]:
        """pid → (`<host>:<component>` or "loadgen", CPU seconds) of the hosts' processes."""
        out: dict[int, tuple[str, float]] = {}
        wanted = {pid: g for pid, g in self.own.items() if g in ("loadgen", "bench")}
        if self.cgroups is not None:
            for host in self.cgroups.hosts():
                wanted.update(dict.fromkeys(self.cgroups.pids(host), host))
        for pid, host in wanted.items():
            try:
                proc = self._ps.Process(pid)
                times = proc.cpu_times()
                group = self._proc_group.get(pid)
                if group is None:
                    info: Any = proc.as_dict(["name", "cmdline", "username"])
                    kind = classify(
                        info["name"] or "", info["cmdline"] or [], info["username"] or ""
                    )
                    group = host if host in ("loadgen", "bench") else f"{host}:{kind}"
                    if not kind.startswith("ray-system") or "IDLE" not in str(info["cmdline"]):
                        self._proc_group[pid] = group
                out[pid] = (group, float(times.user + times.system))
            except (self._ps.NoSuchProcess, self._ps.AccessDenied, ProcessLookupError):
                continue
        return out


def _busy_jiffies() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already in user
    return total - fields[3] - fields[4], total


def idle_sample(cgroups: Cgroups, interval_s: float = 5.0) -> tuple[float, dict[str, float]]:
    """Over `interval_s`: the cores the rest of the machine kept busy besides the harness's
    hosts (another stack, another engineer's work, the kernel), and each host's own cores."""
    hosts0, box0 = cgroups.read_all(), _busy_jiffies()
    time.sleep(interval_s)
    hosts1, box1 = cgroups.read_all(), _busy_jiffies()
    box = (box1[0] - box0[0]) / max(box1[1] - box0[1], 1e-9) * (os.cpu_count() or 1)
    per = {
        h: round((hosts1[h].used_s - hosts0[h].used_s) / interval_s, 3)
        for h in hosts1
        if h in hosts0
    }
    return round(max(box - sum(per.values()), 0.0), 2), per
