"""The step phase of `make bench`: an open-loop ladder of offered rates, back to back, until the
pipeline stops keeping up (see `bench.ladder` for the rule), then a wait until its backlog is
worked off. Postgres is sampled once a second for the phase's orders: how many were stored and
how many are terminal (the backlog is the difference)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters import benchdb
from bench import ladder
from bench.cpu import window_ms_per_order
from bench.loadgen import Record, WorkerSpec
from bench.mainrun import Load
from bench.phase import Phase
from bench.procs import CpuSampler
from bench.tracker import TERMINAL
from bench.ui import info
from bench.workload import Customer

_SPAWN_S = 2.5


@dataclass(frozen=True)
class Plan:
    start_per_s: float = 100.0
    inc_per_s: float = 60.0
    step_s: int = 15
    settle_s: float = 5.0  # left out at the start of each step (the pipeline's delay)
    max_per_s: float = 2000.0
    growth: float = 0.15  # a step adds max(inc_per_s, growth × rate)
    drain_timeout_s: float = 120.0
    rule: ladder.Rule = field(default_factory=ladder.Rule)
    confirm_s: int = 20  # the found rate held this long (0: not confirmed), then lower if need be
    confirm_tries: int = 3


@dataclass
class Climb:
    rates: list[float]
    windows: list[tuple[float, float]] = field(default_factory=list)
    steps: list[ladder.Step] = field(default_factory=list)
    samples: list[ladder.Sample] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)


class _Probe:
    """Counts of the phase's orders (principals `<prefix>-*`, created since `since`)."""

    def __init__(self, conn: benchdb.Conn, prefix: str, since: float):
        self._conn, self._like = conn, prefix + "-%"
        self._since = datetime.fromtimestamp(since, UTC)

    async def sample(self) -> ladder.Sample:
        stored, done = await benchdb.phase_counts(self._conn, TERMINAL, self._since, self._like)
        return ladder.Sample(time.time(), stored, done)


async def find(
    load: Load, plan: Plan, people: list[Customer], prefix: str, dsn: str, cpu: CpuSampler
) -> dict[str, Any]:
    """Climb the ladder with `people` (whose ids start with `prefix`); the phase's figures."""
    rates = ladder.rates(plan.start_per_s, plan.inc_per_s, plan.max_per_s, plan.growth)
    info(
        f"step phase: {rates[0]:g}/s, +max({plan.inc_per_s:g}/s, {plan.growth:.0%}) every "
        f"{plan.step_s}s until the pipeline stops keeping up (at most {rates[-1]:g}/s)"
    )
    climb, drained = await offer(load, plan, people, prefix, dsn, cpu, rates, start_cpu=True)
    return _result(climb, plan, cpu, drained)


async def offer(
    load: Load,
    plan: Plan,
    people: list[Customer],
    prefix: str,
    dsn: str,
    cpu: CpuSampler,
    rates: list[float],
    *,
    label: str = "step",
    first: int = 1,
    start_cpu: bool = False,
) -> tuple[Climb, dict[str, Any]]:
    """Offer `rates`, `plan.step_s` each, back to back, judging each step as it ends (the
    ladder stops at saturation); then wait until the phase's orders are terminal. Postgres is
    sampled once a second for the orders of `people` (ids starting with `prefix`)."""
    t0 = time.time() + _SPAWN_S
    phase = Phase(_specs(load, people, rates, plan.step_s, t0))
    for pid in phase.start():
        cpu.own[pid] = "loadgen"
    async with await benchdb.connect(dsn) as conn:
        probe = _Probe(conn, prefix, t0 - 5.0)
        await asyncio.sleep(max(0.0, t0 - time.time()))
        if start_cpu:
            cpu.start()
        climb = Climb(rates)
        await _climb(phase, probe, climb, plan, t0, cpu, load.progress_s, label, first)
        phase.stop()
        await _finish(phase, climb)
        drained = await _drain(probe, plan.drain_timeout_s, load.progress_s)
        drained["not_stored"] = await _not_stored(conn, climb, prefix, t0 - 5.0)
    return climb, drained


async def _not_stored(conn: benchdb.Conn, climb: Climb, prefix: str, since: float) -> int:
    """Orders answered 202 that Postgres does not have: lost at the door (the drain's counts
    are of stored orders only)."""
    answered = {r[4] for r in climb.records if r[3] == 202}
    if not answered:
        return 0
    stored = await benchdb.order_ids(conn, datetime.fromtimestamp(since, UTC), prefix + "-%")
    return len(answered - set(stored))


def _specs(
    load: Load, people: list[Customer], rates: list[float], step_s: int, t0: float
) -> list[WorkerSpec]:
    n = max(1, load.workers)
    return [
        WorkerSpec(
            index=i,
            base_url=load.base_url,
            path="/api/orders",
            start_at=t0,
            duration_s=float(step_s),
            rate=rates[0] / n,
            offset_s=i / rates[0],
            steps=tuple(r / n for r in rates),
            people=tuple(people[i::n]),
            mix=load.mix,
            seed=load.seed * 1000 + 500 + i,
            niceness=load.niceness,
        )
        for i in range(n)
    ]


async def _climb(
    phase: Phase,
    probe: _Probe,
    climb: Climb,
    plan: Plan,
    t0: float,
    cpu: CpuSampler,
    every: float,
    label: str = "step",
    first: int = 1,
) -> None:
    """Sample once a second; judge each step when it ends; stop at saturation. Steps are
    numbered from `first` in the progress lines."""
    last_line = t0
    deadline = t0 + len(climb.rates) * plan.step_s + 30.0
    while len(climb.steps) < len(climb.rates) and time.time() < deadline:
        await asyncio.sleep(1.0 - time.time() % 1.0)
        climb.records.extend(phase.drain())
        climb.samples.append(await probe.sample())
        cpu.sample()
        k, now = len(climb.steps), climb.samples[-1].t
        end = t0 + (k + 1) * plan.step_s
        if now < end:
            if now - last_line >= every:
                last_line = now
                s = climb.samples[-1]
                info(f"  t={now - t0:4.0f}s offered {climb.rates[k]:g}/s backlog {s.backlog}")
            continue
        window = (end - plan.step_s + plan.settle_s, end)
        step = ladder.measure(climb.samples, *window, climb.rates[k])
        if step is None:  # no samples in the window (the box stalled): judge it on the next
            window = (window[0], now)
            step = ladder.measure(climb.samples, *window, climb.rates[k])
        if step is None:
            continue
        climb.windows.append(window)
        climb.steps.append(step)
        why = ladder.misses(step, plan.rule)
        info(
            f"{label} {first + k}: offered {step.offered_per_s:g}/s "
            f"accepted {step.accepted_per_s:.1f}/s completed {step.completed_per_s:.1f}/s "
            f"backlog {step.backlog_end} ({step.backlog_growth_per_s:+.1f}/s) — "
            + ("; ".join(why) or "keeps up")
        )
        if ladder.judge(climb.steps, plan.rule).saturated:
            return


async def _finish(phase: Phase, climb: Climb, timeout_s: float = 45.0) -> None:
    """Let the workers answer what they have in flight (their queue must be read meanwhile)."""
    deadline = time.time() + timeout_s
    while not phase.done and time.time() < deadline:
        await asyncio.sleep(0.5)
        climb.records.extend(phase.drain())
    phase.join()
    climb.records.extend(phase.drain())


async def _drain(
    probe: _Probe, timeout_s: float, every: float, stall_s: float = 30.0
) -> dict[str, Any]:
    """Wait until every order of the phase is terminal, or `timeout_s`, or no order became
    terminal for `stall_s` (a stuck pipeline: the report shows them as unfinished)."""
    started = last_line = time.time()
    sample = progress = await probe.sample()
    while sample.backlog > 0 and time.time() - started < timeout_s:
        await asyncio.sleep(1.0)
        sample = await probe.sample()
        if sample.done > progress.done:
            progress = sample
        elif sample.t - progress.t > stall_s:
            info(f"[yellow]  no order of the step phase finished in {stall_s:.0f}s: not waiting on")
            break
        if sample.t - last_line >= every:
            last_line = sample.t
            info(f"  draining the step phase: {sample.backlog} orders not terminal yet")
    return {
        "accepted": sample.accepted,
        "unfinished": sample.backlog,
        "drain_s": round(time.time() - started, 1),
    }


def _result(climb: Climb, plan: Plan, cpu: CpuSampler, drained: dict[str, Any]) -> dict[str, Any]:
    verdict = ladder.judge(climb.steps, plan.rule)
    steps = []
    for step, (a, b) in zip(climb.steps, climb.windows, strict=True):
        errors = sum(1 for r in climb.records if a <= r[0] < b and r[3] != 202)
        orders = round(step.completed_per_s * step.window_s)
        t1 = step.t_from + step.window_s
        steps.append(
            step.as_dict()
            | {
                "errors": errors,
                "misses": ladder.misses(step, plan.rule),
                "cpu_ms_per_order": window_ms_per_order(
                    cpu.series, cpu.started, step.t_from, t1, orders
                ),
            }
        )
    best = verdict.at_step
    out = {
        "found": verdict.saturated,
        "completed_per_s": round(verdict.completed_per_s, 1),
        "at_offered_per_s": climb.steps[best].offered_per_s if best is not None else None,
        "misses": verdict.misses,
        "cpu_ms_per_order": steps[best]["cpu_ms_per_order"] if best is not None else {},
        **drained,
        "plan": asdict(plan),
        "steps": steps,
    }
    found = "found" if verdict.saturated else "not reached: the ladder ended first"
    if not verdict.completed_per_s:
        found = "not found: [red]the pipeline completed no order[/red]"
    info(
        f"saturation {found}: {out['completed_per_s']} completed/s "
        f"(offered {out['at_offered_per_s']}/s); drained in {drained['drain_s']}s, "
        f"{drained['unfinished']} unfinished"
    )
    return out
