"""The outbox relay: publishes rows written in business transactions to Kafka, at least once.

Woken by Postgres LISTEN/NOTIFY while it waits (a statement trigger on `outbox` notifies only
then: a notifying commit serializes every other one, migration 0009), polling while it drains,
with a slow poll as a safety net. A batch is deleted in the same transaction that read it, and
that transaction commits only after Kafka acknowledged every message: a crash in between
republishes the batch, and consumers drop the duplicates by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from actors.base import Inspectable, platform_actor, settled
from actors.outbox_floor import RECHECK_S, RECHECK_SHARE, ScanFloor
from adapters import outbox as sql
from adapters import retention
from adapters.kafka import SharedProducer, publish_rows, start_producer
from adapters.pg import open_pool
from core.metrics import Metrics
from core.settings import get_settings

log = logging.getLogger(__name__)
_POLL_S = 0.25  # waiting: the safety poll
_BUSY_S = 0.2  # draining: back to waiting after this long without a row
_HEALTH_WAIT_S = 1.5  # each check of a health call (/ready waits 2 s for all of it)
_PUBLISH_S = 30.0  # a batch's wait for Kafka's acknowledgements (a broker restart takes ~10-20 s)


@platform_actor(max_concurrency=32)
class OutboxRelay(Inspectable):
    async def __init__(self) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        # the publishing loop, the health check's backlog count and the floor's check below it:
        # neither of the other two makes the loop wait for a connection
        self._pool = await open_pool(  # with libpq's bounds, as every pool (adapters/pg.py)
            self._settings.database_url, 3, "relay", wait_for_postgres=True
        )
        self._producer = SharedProducer(
            lambda: start_producer(self._settings.kafka_bootstrap, "outbox-relay")
        )
        self._wake = asyncio.Event()
        # health calls overlap (Ray runs up to 32 at once; /ready gives up on a slow one, the call
        # goes on): one count at a time keeps the publishing loop's connection free
        self._backlog_lock = asyncio.Lock()
        self._floor = ScanFloor()
        self._floor_resets = 0  # rows found below the floor (should stay 0)
        self._published = 0
        self._last_error: str | None = None
        self._metrics = Metrics()
        self._retention = retention.MaintenanceState()
        # one per cluster, long-lived: it also keeps the partitions of the history tables
        # (pg_partman, ADR-012): the coming days' created, those past their window dropped
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._run()),
            asyncio.create_task(self._recheck_floor()),
            asyncio.create_task(retention.maintenance_loop(self._settings, self._retention)),
        ]
        settled(self._settings)

    async def health(self) -> dict[str, Any]:
        """Publishing (Kafka, the last error, the backlog) and the history tables' partition
        maintenance: a table failing run after run makes the relay `degraded` too."""
        # both at once, each bounded below /ready's 2 s for the whole call: past it the relay
        # would be reported `down` (a timeout) where it is `degraded`, and the call would linger
        kafka_ok, backlog = await asyncio.gather(self._kafka_up(), self._backlog_within())
        ok = kafka_ok and self._last_error is None and not self._retention.failing()
        ok = ok and backlog is not None
        return {
            "pid": os.getpid(),
            "status": "up" if ok else "degraded",
            "kafka": "up" if kafka_ok else "down",
            "published": self._published,
            "backlog": backlog,
            "scanFloor": self._floor.floor,
            "floorResets": self._floor_resets,
            "lastError": self._last_error,
            "retention": self._retention.to_json(),
        }

    async def _kafka_up(self) -> bool:
        """Ask the broker for metadata: a real round trip, not a remembered success."""
        try:
            async with asyncio.timeout(_HEALTH_WAIT_S):  # (a producer's start is not cut short)
                producer = await self._producer.get_within(_HEALTH_WAIT_S)
                await producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True

    async def _backlog_within(self) -> int | None:
        try:
            return await asyncio.wait_for(self.backlog(), _HEALTH_WAIT_S)
        except TimeoutError:
            return None  # Postgres slow or the pool busy: reported, not waited for

    async def backlog(self) -> int:
        async with self._backlog_lock, self._pool.connection() as conn:
            return await sql.backlog(conn)

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in sql.notifications(self._settings.database_url):
                    self._wake.set()
            except Exception as exc:
                log.warning("outbox LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    async def _run(self) -> None:
        while True:
            try:
                await self._wait_for_rows()
                await self._drain()
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox publish failed, will retry: %s", self._last_error)
                await self._producer.reset()
                await asyncio.sleep(1)

    async def _wait_for_rows(self) -> None:
        """Idle: ask the trigger for a NOTIFY and wait for it, polling every `_POLL_S` as a
        safety net. A row whose statement ran before the flag was set, and that committed after
        the first look below, waits for that poll."""
        async with self._pool.connection() as conn:
            await sql.set_waiting(conn, True)
        self._wake.clear()
        while not await self._publish_batch():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)
            if self._wake.is_set():
                break
        async with self._pool.connection() as conn:
            await sql.set_waiting(conn, False)

    async def _drain(self) -> None:
        """Busy: publish until no row has come for `_BUSY_S`, polling every `BATCH_LINGER_MS`
        (rows committed meanwhile make one batch; a full batch goes on at once)."""
        pause = max(self._settings.batch_linger_ms, 1) / 1000
        last_rows = time.monotonic()
        while True:
            published = await self._publish_batch()
            if published >= self._settings.outbox_batch_max:
                continue
            now = time.monotonic()
            if published:
                last_rows = now
            elif now - last_rows >= _BUSY_S:
                return
            await asyncio.sleep(pause)

    async def _publish_batch(self) -> int:
        """Publish one batch; returns its size (a full batch means the table may hold more)."""
        producer = await self._producer.get()
        limit = self._settings.outbox_batch_max
        async with self._pool.connection() as conn:
            taken = await sql.take(conn, limit, self._floor.floor)
            if taken.rows:  # bounded: the deletes' transaction (its xid, its row locks) stays
                # open meanwhile; past the bound it rolls back and the rows go again later
                await publish_rows(producer, taken.rows, _PUBLISH_S)
        self._floor.committed(taken, limit)  # the block above committed the deletes
        # Postgres (and the broker, when there were rows) answered: whatever failed before has
        # recovered. Cleared here, not after a whole busy cycle: after a Postgres restart an
        # idle relay would otherwise report the old error until the next order came, and a
        # client waiting for "up" before sending one would wait forever.
        self._last_error = None
        if not taken.rows:
            return 0
        self._published += len(taken.rows)
        self._metrics.relay_published(len(taken.rows))
        return len(taken.rows)

    async def _recheck_floor(self) -> None:
        """Look below the scan floor (actors/outbox_floor.py): nothing should be there; if
        something is, scan from the lowest id again. Its own task: under a held snapshot this
        look walks the dead entries the takes no longer walk (~1 µs each, millions after an
        hour at 400 orders/s), so it waits `RECHECK_S` or `RECHECK_SHARE` times its last
        duration, whichever is longer: at most ~1 % of a core."""
        wait = RECHECK_S
        while True:
            await asyncio.sleep(wait)
            floor = self._floor.floor
            if not floor:
                continue
            started = time.monotonic()
            try:
                async with self._pool.connection() as conn:
                    below = await sql.any_below(conn, floor)
            except Exception as exc:  # the publishing loop reports Postgres being down
                log.info("outbox floor check failed: %s", exc)
                continue
            wait = max(RECHECK_S, RECHECK_SHARE * (time.monotonic() - started))
            if below:
                log.warning("outbox rows at or below the scan floor %d: scanning from 0", floor)
                self._floor.reset()
                self._floor_resets += 1
