"""The load generator: worker processes with a lean asyncio HTTP/1.1 client on uvloop.

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

import orjson

from bench.http1 import Http1Client, HttpError
from bench.workload import Customer, Mix, OrderFactory
from core.priority import renice_process

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
    niceness: int = 0


def run_worker(spec: WorkerSpec, out: Queue[Any]) -> None:
    """Process entry point: run the phase, stream records to `out`, then
    `("done", (index, cpu_seconds))`."""
    import uvloop

    renice_process(spec.niceness, f"load generator {spec.index}")
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
        self._path = spec.path.encode()
        self.cpu_s = 0.0

    async def run(self) -> None:
        cpu0 = time.process_time()
        spec = self._spec
        client = Http1Client(spec.base_url, spec.timeout_s)
        flusher = asyncio.create_task(self._flush_loop())
        try:
            if spec.rate > 0:
                await self._open_loop(client)
            else:
                await asyncio.gather(*(self._closed_loop(client) for _ in range(spec.concurrency)))
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=spec.timeout_s + 1)
        finally:
            client.close()
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        self._flush()
        self.cpu_s = time.process_time() - cpu0

    async def _open_loop(self, client: Http1Client) -> None:
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
                    task = asyncio.create_task(self._one(client, due))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                i += 1

    async def _closed_loop(self, client: Http1Client) -> None:
        spec = self._spec
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        end = spec.start_at + spec.duration_s
        while time.time() < end:
            await self._one(client, time.time())

    async def _one(self, client: Http1Client, due: float) -> None:
        sent = time.time()
        status, order_id = 0, ""
        try:
            if self._orders is None:
                status, _ = await client.request(b"GET", self._path)
            else:
                who, body = self._orders.next()
                headers = b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % (
                    who.token.encode()
                )
                status, payload = await client.request(b"POST", self._path, headers, body)
                if status == 202:
                    order_id = str(orjson.loads(payload)["orderId"])
        except (HttpError, OSError, TimeoutError, ValueError, KeyError):
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
