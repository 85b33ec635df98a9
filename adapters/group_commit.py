"""Group commit: many concurrent callers, one Postgres transaction per batch.

A transaction per request is the ceiling of the accept path on a small box; batching the rows of
concurrent requests into one transaction (one multi-row statement since ADR-005) roughly
doubles it (docs/adr/ADR-003, ADR-005). The gateway's admission checks batch their Redis
round trips the same way (serve_app/admission.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class GroupCommit(Generic[T, R]):
    """Collects items from concurrent callers and flushes them together through `flush`.

    `flush(items)` runs one transaction for the whole batch and returns one result per item;
    each caller's `submit` returns its item's result once the batch committed, or raises the
    batch's error.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 256,
        flushers: int = 2,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(flushers)]

    async def submit(self, item: T) -> R:
        """Queue one item and wait until it is durable."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:  # the callers see the error; the loop keeps serving
                log.warning("group commit of %d items failed: %s", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
