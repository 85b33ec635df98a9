"""The outbox relay: publishes rows written in business transactions to Kafka, at least once.

Woken by Postgres LISTEN/NOTIFY (a statement trigger on `outbox`), with a slow poll as a safety
net. A batch is deleted in the same transaction that read it, and that transaction commits only
after Kafka acknowledged every message: a crash in between republishes the batch, and consumers
drop the duplicates by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from actors.base import platform_actor
from adapters import outbox as sql
from adapters import retention
from adapters.kafka import publish_rows, start_producer
from adapters.pg import open_pool
from core.metrics import Metrics
from core.settings import get_settings

log = logging.getLogger(__name__)
_POLL_S = 1.0
_BUSY_S = 0.1


@platform_actor(max_concurrency=32)
class OutboxRelay:
    async def __init__(self) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        self._pool = await open_pool(self._settings.database_url, 2, "relay")
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._busy_at = 0.0  # when the last non-empty batch went out
        self._published = 0
        self._last_error: str | None = None
        self._metrics = Metrics()
        # one per cluster, long-lived: it also keeps the partitions of the history tables
        # (pg_partman, ADR-012): the coming days' created, those past their window dropped
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._run()),
            asyncio.create_task(retention.maintenance_loop(self._settings)),
        ]

    async def health(self) -> dict[str, Any]:
        kafka_ok = await self._kafka_up()
        return {
            "pid": os.getpid(),
            "status": "up" if kafka_ok and self._last_error is None else "degraded",
            "kafka": "up" if kafka_ok else "down",
            "published": self._published,
            "backlog": await self.backlog(),
            "lastError": self._last_error,
        }

    async def _kafka_up(self) -> bool:
        """Ask the broker for metadata: a real round trip, not a remembered success."""
        try:
            producer = await asyncio.wait_for(self._ensure_producer(), 3)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 2)
        except Exception:
            return False
        return True

    async def backlog(self) -> int:
        async with self._pool.connection() as conn:
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)
            self._wake.clear()
            try:
                # adaptive batching: each batch takes every row committed while the last one
                # was being published (bounded); an idle relay publishes a new row at once
                while True:
                    await self._linger()
                    self._wake.clear()
                    published = await self._publish_batch()
                    self._busy_at = time.monotonic() if published else self._busy_at
                    if published < self._settings.outbox_batch_max and not self._wake.is_set():
                        break
                self._last_error = None
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox publish failed, will retry: %s", self._last_error)
                await self._reset_producer()
                await asyncio.sleep(1)

    async def _linger(self) -> None:
        """Under continuous load (a batch went out within the last `_BUSY_S`) wait
        `BATCH_LINGER_MS` so that rows committed meanwhile join this batch; an idle relay
        publishes a new row at once."""
        linger = self._settings.batch_linger_ms
        if linger and time.monotonic() - self._busy_at < _BUSY_S:
            await asyncio.sleep(linger / 1000)

    async def _publish_batch(self) -> int:
        """Publish one batch; returns its size (a full batch means the table may hold more)."""
        producer = await self._ensure_producer()
        limit = self._settings.outbox_batch_max
        async with self._pool.connection() as conn:
            rows = await sql.take(conn, limit)
            if not rows:
                return 0
            await publish_rows(producer, rows)
        self._published += len(rows)
        self._metrics.relay_published(len(rows))
        return len(rows)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await start_producer(self._settings.kafka_bootstrap, "outbox-relay")
        return self._producer

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()
