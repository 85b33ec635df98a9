"""Closed-loop phases: the load generator's own ceiling on `/health`, and the accept capacity of
Ray Serve vs plain uvicorn (same app, same order mix) with the drain of what they accepted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from adapters import benchdb
from bench import wrkrun
from bench.loadgen import WorkerSpec
from bench.phase import Phase
from bench.procs import CpuSampler
from bench.stats import pct_ms
from bench.tracker import TERMINAL
from bench.ui import info
from bench.workload import Customer, Mix, OrderFactory

_SPAWN_S = 2.5


async def generator_ceiling(
    base_url: str, *, workers: int, concurrency: int, duration_s: int, cpu: CpuSampler
) -> dict[str, Any]:
    """Our Python generator, closed loop on GET /health: requests/s and its CPU per request."""
    t0 = time.time() + _SPAWN_S
    per = max(1, concurrency // workers)
    phase = Phase(
        [
            WorkerSpec(
                index=i,
                base_url=base_url,
                path="/health",
                start_at=t0,
                duration_s=float(duration_s),
                concurrency=per,
            )
            for i in range(workers)
        ]
    )
    for pid in phase.start():
        cpu.own[pid] = "loadgen"
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu.start()
    records = []
    while not phase.done and time.time() < t0 + duration_s + 30:
        await asyncio.sleep(0.5)
        records.extend(phase.drain())
    phase.join()
    records.extend(phase.drain())
    cpu.sample()
    cores = cpu.cores()
    ok = [r for r in records if r[3] == 200]
    gen = round(phase.cpu_s / duration_s, 3)  # measured inside the workers
    return {
        "url": f"{base_url}/health",
        "tool": f"bench.loadgen ({workers} processes, {per * workers} connections)",
        "rps": round(len(ok) / duration_s, 1),
        "p99_ms": pct_ms([(r[2] - r[1]) * 1000 for r in ok], 99),  # None: no 200 at all
        "errors": len(records) - len(ok),
        "loadgen_cores": gen,
        "client_cpu_ms_per_request": round(gen * duration_s * 1000 / max(len(ok), 1), 3),
        "cpu_cores": cores,
    }


async def wrk_health(base_url: str, *, connections: int, duration_s: int) -> dict[str, Any]:
    """wrk on GET /health: the route's ceiling with the cheapest client we have."""
    res = await wrkrun.run(f"{base_url}/health", connections=connections, duration_s=duration_s)
    return {"tool": "wrk", **res.as_dict()}


async def accept_capacity(
    base_url: str,
    people: list[Customer],
    mix: Mix,
    *,
    connections: int,
    duration_s: int,
    seed: int,
    cpu: CpuSampler,
) -> dict[str, Any]:
    """wrk, closed loop, POST /api/orders of the mix (no scarce SKUs): accepted/s at saturation."""
    script = wrkrun.orders_script(OrderFactory(mix, people, seed, scarce=False), 2000)
    cpu.start()
    res = await wrkrun.run(base_url, connections=connections, duration_s=duration_s, script=script)
    cpu.sample()
    return {"tool": "wrk", **res.as_dict(), "cpu_cores": cpu.cores()}


async def drain(dsn: str, principals: list[str], timeout_s: float) -> dict[str, Any]:
    """Wait until every order of `principals` is terminal; the pipeline's rate on that burst."""
    started = last_line = time.time()
    async with await benchdb.connect(dsn) as conn:
        while True:
            total, open_, first, last = await benchdb.burst(conn, principals, TERMINAL)
            if open_ == 0 or time.time() - started > timeout_s:
                break
            if time.time() - last_line >= 5.0:
                last_line = time.time()
                info(f"  draining: {open_} of {total} orders not terminal yet")
            await asyncio.sleep(1.0)
    span = (last - first) if first is not None and last is not None else 0.0
    return {
        "orders": total,
        "unfinished": open_,
        "waited_s": round(time.time() - started, 1),
        "burst_completed_per_s": round((total - open_) / span, 1) if span > 0 else 0.0,
    }
