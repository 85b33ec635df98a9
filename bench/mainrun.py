"""The tracked main run: offered load through the gateway, every order of its customers followed
to a terminal status (202 seen or not), progress lines while it runs, and its summary."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

from bench import speed
from bench.cpu import steal_pct, window_ms_per_order
from bench.loadgen import Record, WorkerSpec
from bench.phase import Phase
from bench.procs import CpuSampler
from bench.publish_wait import publish_waits
from bench.stall import StallWatch
from bench.stats import (
    errors_by_reason,
    errors_by_status,
    group_cpu,
    hop_latencies,
    latency_summary,
    pct_ms,
    shown,
)
from bench.tracker import Tracker
from bench.ui import info
from bench.workload import Customer, Mix

_SPAWN_S = 2.5  # workers import their modules before the common start time


@dataclass(frozen=True)
class Load:
    base_url: str
    duration_s: int
    rate: float
    concurrency: int
    workers: int
    mix: Mix
    seed: int
    grace_s: float
    warmup_s: float
    progress_s: float
    # The generator is the measuring instrument: on a box it shares with the stack it goes
    # first (when allowed), so that its own lateness is not counted as the platform's.
    niceness: int = -5
    # Where the run's events are read back for `e2e_publish_wait_ms` ("": not read).
    kafka_bootstrap: str = ""


@dataclass
class MainRun:
    load: Load
    t0: float = 0.0
    load_end: float = 0.0
    records: list[Record] = field(default_factory=list)
    cpu_cores: dict[str, float] = field(default_factory=dict)
    loadgen_cpu_s: float = 0.0
    cpu_series: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    steal_series: list[tuple[float, float]] = field(default_factory=list)
    unit_series: list[tuple[float, float]] = field(default_factory=list)  # bench.speed
    # (time, vacuums and analyzes running): one sample a second while the load runs
    maintenance_series: list[tuple[float, int]] = field(default_factory=list)
    cpu_started: float = 0.0
    publish_wait: dict[str, dict[str, float]] = field(default_factory=dict)
    stall_report: str | None = None  # the stack when no order finished for a while (bench.stall)
    # orders of the run's customers stored, and not terminal when the wait ended (202 seen or
    # not: a client that gave up, or lost its connection, after the gateway stored the order)
    stored: int = 0
    unfinished: int = 0
    # the orders not terminal when the wait ended: answered 202 (stored or not), or stored
    # without a 202 seen (each counted once: `lost`)
    lost_ids: set[uuid.UUID] = field(default_factory=set)


async def run(load: Load, people: list[Customer], tracker: Tracker, cpu: CpuSampler) -> MainRun:
    """Run the load, then wait up to `grace_s` for every order of `people` to finish: those
    answered 202 by id (their outcomes), and every order stored for them by count."""
    result = MainRun(load)
    result.t0 = t0 = time.time() + _SPAWN_S
    phase = Phase(_specs(load, people, t0))
    for pid in phase.start():
        cpu.own[pid] = "loadgen"
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu.start()
    window = _Window(result, tracker, load.progress_s)
    stall = StallWatch()
    deadline = t0 + load.duration_s + 45
    while not phase.done and time.time() < deadline:
        await _tick()
        _take(phase.drain(), result, tracker)
        stall.step(time.time(), await tracker.poll(), len(tracker.outstanding))
        result.maintenance_series.append((time.time(), await tracker.maintenance()))
        window.step(cpu.sample(), cpu.steal_cores)
    phase.join()
    _take(phase.drain(), result, tracker)  # what the workers sent last: tracked all the same
    result.loadgen_cpu_s = phase.cpu_s
    result.load_end = time.time()
    result.cpu_cores = cpu.cores()
    info(f"load done: {tracker.accepted} accepted; waiting ≤{load.grace_s:.0f}s for the pipeline")
    until = result.load_end + load.grace_s
    principals = [p.customer_id for p in people]
    while True:
        if not tracker.outstanding or time.time() >= until:
            result.stored, result.unfinished = await tracker.stored(principals)
            if not result.unfinished or time.time() >= until:
                break
        await _tick()
        stall.step(time.time(), await tracker.poll(), len(tracker.outstanding))
        window.step(cpu.sample(), cpu.steal_cores)
    if tracker.outstanding or result.unfinished:
        await tracker.poll()  # the same moment for both sets
        result.lost_ids = set(tracker.outstanding) | await tracker.open_ids(principals)
    result.stall_report = stall.report()
    if result.stall_report is not None:
        info(f"the stack when the pipeline stalled:\n{result.stall_report}")
    result.cpu_series, result.cpu_started = list(cpu.series), cpu.started
    result.steal_series = list(cpu.steal_series)
    result.publish_wait = await _publish_waits(load, t0)
    return result


def _take(records: list[Record], run: MainRun, tracker: Tracker) -> None:
    """Keep the workers' `records`, and track the order of each 202 among them."""
    for rec in records:
        run.records.append(rec)
        if rec[3] == 202:
            tracker.add(rec[4], rec[2])


async def _publish_waits(load: Load, t0: float) -> dict[str, dict[str, float]]:
    """`e2e_publish_wait_ms` over the steady window; {} when Kafka could not be read (said)."""
    if not load.kafka_bootstrap:
        return {}
    start, end = t0 + load.warmup_s, t0 + load.duration_s
    try:
        return await publish_waits(load.kafka_bootstrap, start, end)
    except (KafkaError, OSError) as exc:
        info(f"[yellow]publish waits not measured: Kafka could not be read ({exc})")
        return {}


def summary(run: MainRun, tracker: Tracker) -> dict[str, Any]:
    """The run's headline figures (see docs/performance.md for the definitions). A latency with
    nothing to measure (no 202, no order shipped) is None, never 0."""
    load, t0 = run.load, run.t0
    ok = [r for r in run.records if r[3] == 202]
    outcomes = list(tracker.outcomes.values())
    steady_from, steady_to = t0 + load.warmup_s, t0 + load.duration_s
    steady_s = max(steady_to - steady_from, 1e-6)
    done_in_window = [o for o in outcomes if steady_from <= o.terminal_at < steady_to]
    shipped_in_window = [
        o for o in outcomes if o.shipped_at is not None and steady_from <= o.shipped_at < steady_to
    ]
    e2e = [o.e2e_s * 1000 for o in outcomes if o.e2e_s is not None]
    accept = latency_summary([(r[2] - r[0]) * 1000 for r in ok])
    last_done = max((o.terminal_at for o in outcomes), default=run.load_end)
    refused = errors_by_reason(run.records)
    return {
        "offered": len(run.records),
        "offered_per_s": round(len(run.records) / load.duration_s, 1),
        "accepted": len(ok),
        "accepted_per_s": round(len(ok) / load.duration_s, 1),
        "completed": len(outcomes),
        "completed_per_s": round(len(done_in_window) / steady_s, 1),
        "shipped_per_s": round(len(shipped_in_window) / steady_s, 1),
        "p50_accept_ms": accept["p50"],
        "p95_accept_ms": accept["p95"],
        "p99_accept_ms": accept["p99"],
        "max_accept_ms": accept["max"],
        "service_p99_ms": pct_ms([(r[2] - r[1]) * 1000 for r in ok], 99),
        "send_lag_p99_ms": pct_ms([(r[1] - r[0]) * 1000 for r in run.records], 99),
        "p50_e2e_ms": pct_ms(e2e, 50),
        "p95_e2e_ms": pct_ms(e2e, 95),
        "p99_e2e_ms": pct_ms(e2e, 99),
        "e2e_hops_ms": hop_latencies(outcomes),
        "e2e_publish_wait_ms": run.publish_wait,
        "errors": errors_by_status(refused),
        "error_reasons": refused,
        "final_status": dict(Counter(o.status for o in outcomes).most_common()),
        # not terminal after the grace period: answered 202 (stored or not) or stored without a
        # 202 seen, each once
        "lost": len(run.lost_ids),
        "stored_without_202": max(0, run.stored - tracker.accepted),
        "drain_s": round(max(0.0, last_done - (t0 + load.duration_s)), 1),
        "cpu_cores": run.cpu_cores,
        "loadgen_cores": round(run.loadgen_cpu_s / load.duration_s, 3),
        "loadgen_cpu_ms_per_request": round(run.loadgen_cpu_s * 1000 / max(len(run.records), 1), 3),
        "cpu_ms_per_order": window_ms_per_order(
            run.cpu_series, run.cpu_started, steady_from, steady_to, len(done_in_window)
        ),
        "cpu_steal_pct": steal_pct(
            run.steal_series, run.cpu_started, steady_from, steady_to, os.cpu_count() or 1
        ),
        "cpu_unit_ms": speed.median_in(run.unit_series, steady_from, steady_to),
        "maintenance_s": busy_seconds(run.maintenance_series, steady_from, steady_to),
        "stall_report": run.stall_report,
    }


def _specs(load: Load, people: list[Customer], t0: float) -> list[WorkerSpec]:
    n = max(1, load.workers)
    split = [people[i::n] for i in range(n)]  # a customer belongs to one worker
    common: dict[str, Any] = {
        "base_url": load.base_url,
        "path": "/api/orders",
        "start_at": t0,
        "duration_s": float(load.duration_s),
        "mix": load.mix,
        "niceness": load.niceness,
    }
    if load.concurrency > 0:
        return [
            WorkerSpec(
                index=i,
                concurrency=load.concurrency // n + (1 if i < load.concurrency % n else 0),
                people=tuple(split[i]),
                seed=load.seed * 1000 + i,
                **common,
            )
            for i in range(n)
        ]
    return [
        WorkerSpec(
            index=i,
            rate=load.rate / n,
            offset_s=i / load.rate,
            people=tuple(split[i]),
            seed=load.seed * 1000 + i,
            **common,
        )
        for i in range(n)
    ]


def busy_seconds(series: Sequence[tuple[float, int]], start: float, end: float) -> int:
    """Seconds (1 Hz samples) within [start, end] in which Postgres ran a vacuum or analyze."""
    return sum(1 for at, n in series if start <= at <= end and n > 0)


async def _tick() -> None:
    await asyncio.sleep(1.0 - time.time() % 1.0)  # on whole seconds: tidy per-second series


class _Window:
    """Prints a progress line every `every_s` seconds, over the records since the last one."""

    def __init__(self, run: MainRun, tracker: Tracker, every_s: float) -> None:
        self._run, self._tracker, self._every = run, tracker, every_s
        self._last_t, self._last_n, self._last_done = run.t0, 0, 0
        self._cpu: list[dict[str, float]] = []
        self._steal: list[float] = []

    def step(self, cores: dict[str, float], steal: float) -> None:
        """One sample: cores per component, and cores the hypervisor took from the machine."""
        self._cpu.append(cores)
        self._steal.append(steal)
        now = time.time()
        if now - self._last_t < self._every:
            return
        span = now - self._last_t
        new = self._run.records[self._last_n :]
        ok = [r for r in new if r[3] == 202]
        done = len(self._tracker.outcomes)
        avg: dict[str, float] = {}
        for sample in self._cpu:
            for k, v in sample.items():
                avg[k] = avg.get(k, 0.0) + v / len(self._cpu)
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(group_cpu(avg).items())[:6])
        p99 = pct_ms([(r[2] - r[0]) * 1000 for r in ok], 99)
        unit = speed.unit_ms()
        self._run.unit_series.append((time.time(), unit))
        info(
            f"t={now - self._run.t0:4.0f}s answered {len(new) / span:6.1f}/s "
            f"accepted {len(ok) / span:6.1f}/s completed {(done - self._last_done) / span:6.1f}/s "
            f"p99 accept {shown(p99):>6} ms "
            f"errors {len(new) - len(ok)} in-pipeline {len(self._tracker.outstanding)} | "
            f"cores: {top}; stolen {sum(self._steal) / len(self._steal):.2f}; "
            f"CPU unit {unit:.1f} ms"
        )
        self._last_t, self._last_n, self._last_done = now, len(self._run.records), done
        self._cpu, self._steal = [], []
