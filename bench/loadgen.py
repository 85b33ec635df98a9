"""The load generator: worker processes with an asyncio HTTP client (aiohttp on uvloop).

Open loop (`rate`): request i of a worker is due at `start_at + offset + i / rate`, sent when
due whatever is still in flight, and its latency counts from when it was due, so a slow server
cannot slow the offered load down (no coordinated omission). Closed loop (`concurrency`): that
many requests in flight, each sent when the previous one answered.

Each record is `(due, sent, done, status, order_id)`: wall-clock seconds; status 0 is a client
error (connection, timeout) and -1 a request the generator could not send (too many in flight).
At the end a worker reports the CPU seconds it used for the load (imports excluded).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

import aiohttp
import orjson

from bench.workload import Customer, Mix, OrderFactory

Record = tuple[float, float, float, int, str]
_FLUSH_S = 0.25


@dataclass(frozen=True)
class WorkerSpec:
    """One worker's share of a phase (picklable: crosses into a spawned process)."""

    index: int
    base_url: str
    path: str  # "/api/orders" (POST an order) or any other path (GET)
    start_at: float
    duration_s: float
    rate: float = 0.0  # per worker; > 0 means open loop
    offset_s: float = 0.0
    concurrency: int = 0  # per worker, closed loop
    max_inflight: int = 2000
    timeout_s: float = 30.0
    people: tuple[Customer, ...] = ()
    mix: Mix = Mix()
    seed: int = 0
    scarce: bool = True


def run_worker(spec: WorkerSpec, out: Queue[Any]) -> None:
    """Process entry point: run the phase, stream records to `out`, then
    `("done", (index, cpu_seconds))`."""
    import uvloop

    worker = _Worker(spec, out)
    uvloop.run(worker.run())
    out.put(("done", (spec.index, worker.cpu_s)))


class _Worker:
    def __init__(self, spec: WorkerSpec, out: Queue[Any]) -> None:
        self._spec = spec
        self._out = out
        self._buffer: list[Record] = []
        self._orders = (
            OrderFactory(spec.mix, list(spec.people), spec.seed, scarce=spec.scarce)
            if spec.path == "/api/orders"
            else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.cpu_s = 0.0

    async def run(self) -> None:
        cpu0 = time.process_time()
        spec = self._spec
        limit = max(spec.max_inflight, spec.concurrency)
        connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        flusher = asyncio.create_task(self._flush_loop())
        async with aiohttp.ClientSession(
            spec.base_url, connector=connector, timeout=timeout, skip_auto_headers=["User-Agent"]
        ) as session:
            if spec.rate > 0:
                await self._open_loop(session)
            else:
                await asyncio.gather(*(self._closed_loop(session) for _ in range(spec.concurrency)))
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=spec.timeout_s + 1)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        self._flush()
        self.cpu_s = time.process_time() - cpu0

    async def _open_loop(self, session: aiohttp.ClientSession) -> None:
        spec = self._spec
        first = spec.start_at + spec.offset_s
        total = int(spec.duration_s * spec.rate)
        i = 0
        while i < total:
            now = time.time()
            due = first + i / spec.rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while i < total and first + i / spec.rate <= now:  # catch up after a late wake-up
                due = first + i / spec.rate
                if len(self._tasks) >= spec.max_inflight:
                    self._buffer.append((due, now, now, -1, ""))
                else:
                    task = asyncio.create_task(self._one(session, due))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                i += 1

    async def _closed_loop(self, session: aiohttp.ClientSession) -> None:
        spec = self._spec
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        end = spec.start_at + spec.duration_s
        while time.time() < end:
            await self._one(session, time.time())

    async def _one(self, session: aiohttp.ClientSession, due: float) -> None:
        sent = time.time()
        status, order_id = 0, ""
        try:
            if self._orders is None:
                async with session.get(self._spec.path) as resp:
                    status = resp.status
                    await resp.read()
            else:
                who, body = self._orders.next()
                headers = {
                    "Authorization": f"Bearer {who.token}",
                    "Content-Type": "application/json",
                }
                async with session.post(self._spec.path, data=body, headers=headers) as resp:
                    status = resp.status
                    payload = await resp.read()
                if status == 202:
                    order_id = str(orjson.loads(payload)["orderId"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            status = status if status and status != 202 else 0
        self._buffer.append((due, sent, time.time(), status, order_id))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._out.put(("records", batch))
