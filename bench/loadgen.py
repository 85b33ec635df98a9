"""The load generator: worker processes with a lean asyncio HTTP/1.1 client on uvloop.

Open loop (`rate`): request i of a worker is due at `start_at + offset + i / rate`, sent when
due whatever is still in flight, and its latency counts from when it was due, so a slow server
cannot slow the offered load down (no coordinated omission). Closed loop (`concurrency`): that
many requests in flight, each sent when the previous one answered. A ladder (`steps`) is open
loop at one rate per step, back to back; the parent may end it early through `stop`.

Each record is `(due, sent, done, status, detail)`: wall-clock seconds; status 0 is a client
error (connection, timeout — counted from before the connection is opened —, or a request still
unanswered when the worker ends) and -1 a request the generator could not send (too many in
flight); `detail` is the order id of a 202, else why the order was not taken: what the answer's
body says (`bench.http1.refusal`), the client error's type, or `ABANDONED`.
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

from bench.http1 import Http1Client, HttpError, refusal
from bench.procs import renice_self
from bench.workload import Customer, Mix, OrderFactory

Record = tuple[float, float, float, int, str]
_FLUSH_S = 0.25
ABANDONED = "no answer when the worker ended"  # the detail of a request cancelled at the end


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
    steps: tuple[float, ...] = ()  # per-worker rates of a ladder, `duration_s` each


def segments(spec: WorkerSpec) -> list[tuple[float, float, float]]:
    """`(start, duration, rate)` of each open-loop segment of `spec` (one unless a ladder)."""
    if spec.steps:
        return [
            (spec.start_at + k * spec.duration_s, spec.duration_s, rate)
            for k, rate in enumerate(spec.steps)
        ]
    return [(spec.start_at, spec.duration_s, spec.rate)] if spec.rate > 0 else []


def run_worker(spec: WorkerSpec, out: Queue[Any], stop: Any = None) -> None:
    """Process entry point: run the phase, stream records to `out`, then
    `("done", (index, cpu_seconds))`. Setting the `stop` event ends an open loop early."""
    import uvloop

    renice_self(spec.niceness)
    worker = _Worker(spec, out, stop)
    uvloop.run(worker.run())
    out.put(("done", (spec.index, worker.cpu_s)))


class _Worker:
    def __init__(self, spec: WorkerSpec, out: Queue[Any], stop: Any = None) -> None:
        self._spec = spec
        self._out = out
        self._stop = stop
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
            if spec.rate > 0 or spec.steps:
                for start, duration, rate in segments(spec):
                    if not await self._open_loop(client, start, duration, rate):
                        break
            else:
                await asyncio.gather(*(self._closed_loop(client) for _ in range(spec.concurrency)))
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=spec.timeout_s + 1)
            await self._abandon()
        finally:
            client.close()
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        self._flush()
        self.cpu_s = time.process_time() - cpu0

    async def _open_loop(
        self, client: Http1Client, start: float, duration: float, rate: float
    ) -> bool:
        """Send `duration * rate` requests from `start`; False when stopped early."""
        spec = self._spec
        # the workers interleave: worker i of n is offset by i/n of an interval (offset_s is
        # i/n intervals at `spec.rate`)
        first = start + (spec.offset_s * spec.rate / rate if spec.rate > 0 else 0.0)
        total = int(duration * rate)
        i = 0
        while i < total:
            now = time.time()
            due = first + i / rate
            if due > now:
                if self._stop is not None and self._stop.is_set():
                    return False
                await asyncio.sleep(due - now)
                continue
            while i < total and first + i / rate <= now:  # catch up after a late wake-up
                due = first + i / rate
                if len(self._tasks) >= spec.max_inflight:
                    self._buffer.append((due, now, now, -1, ""))
                else:
                    task = asyncio.create_task(self._one(client, due))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                i += 1
        return True

    async def _abandon(self) -> None:
        """Cancel the requests still unanswered as the worker ends: each is recorded as a client
        error (status 0, `ABANDONED`), not dropped from the offered load."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _closed_loop(self, client: Http1Client) -> None:
        spec = self._spec
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        end = spec.start_at + spec.duration_s
        while time.time() < end:
            await self._one(client, time.time())

    async def _one(self, client: Http1Client, due: float) -> None:
        sent = time.time()
        status, detail = 0, ""
        try:
            if self._orders is None:
                status, _ = await client.request(b"GET", self._path)
            else:
                who, body = self._orders.next()
                headers = b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % (
                    who.token.encode()
                )
                status, payload = await client.request(b"POST", self._path, headers, body)
                detail = (
                    str(orjson.loads(payload)["orderId"]) if status == 202 else refusal(payload)
                )
        except (HttpError, OSError, TimeoutError, ValueError, KeyError) as exc:
            status = status if status and status != 202 else 0
            detail = type(exc).__name__
        except asyncio.CancelledError:
            self._buffer.append((due, sent, time.time(), 0, ABANDONED))
            raise
        self._buffer.append((due, sent, time.time(), status, detail))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._out.put(("records", batch))
