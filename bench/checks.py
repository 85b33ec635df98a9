"""The state of the stack around a run: is it up, what does the machine already do, has the
gateway recovered from the last phase."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench import stats
from bench.procs import CpuSampler
from bench.ui import info


class NotReady(RuntimeError):
    """The stack is not running (or not ready) at the given URL."""


async def preflight(base: str) -> None:
    """Raise `NotReady` unless the gateway answers `/ready` with a status other than down."""
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/ready") as resp:
            body = await resp.json()
    except (aiohttp.ClientError, ValueError) as exc:
        raise NotReady(f"no gateway at {base} ({exc}); start the stack with `make up`") from None
    if body.get("status") == "down":
        raise NotReady(f"{base}/ready reports down: {body}; fix the stack (`make status`)")


async def settle(base: str, timeout_s: float = 120.0) -> float:
    """Wait until the gateway answers /health fast again: an overloaded gateway keeps working
    off requests whose clients gave up, which would skew the next phase."""
    started = time.monotonic()
    fast = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while fast < 3 and time.monotonic() - started < timeout_s:
            t = time.monotonic()
            try:
                async with session.get(f"{base}/health") as resp:
                    await resp.read()
                fast = fast + 1 if time.monotonic() - t < 0.05 else 0
            except (aiohttp.ClientError, TimeoutError):
                fast = 0
            await asyncio.sleep(0.5)
    waited = round(time.monotonic() - started, 1)
    if waited > 5:
        info(f"gateway took {waited}s to answer /health quickly again after the main run")
    return waited


async def background(cpu: CpuSampler, seconds: float = 3.0) -> dict[str, float]:
    """What the machine does before we load it (another test run would skew every figure)."""
    cpu.start()
    await asyncio.sleep(seconds)
    cpu.sample()
    cores = stats.group_cpu(cpu.cores())
    busy = sum(cores.values())
    info(f"background CPU before the run: {busy:.2f} cores {cores}")
    if busy > 0.3:
        info("[yellow]warning: the machine is busy; figures of this run will be lower")
    return cores
