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

from domain.errors import Unavailable

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
        self._closed = False

    async def submit(self, item: T) -> R:
        """Queue one item and wait until it is durable; `Closed` once `close()` began (no
        flusher would ever take it: a request that came late waited for ever, its
        Idempotency-Key's claim left behind)."""
        if self._closed:
            raise Closed("the service is shutting down")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def close(self) -> None:
        """Stop the flushers. A batch being flushed, and every item still queued, fails with
        `Closed` for its caller: none is left waiting (whether a batch cut short committed is
        unknown to its callers, as with a lost answer)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        _fail(queued, Closed("the service is shutting down"))

    async def _run(self) -> None:
        while True:
            batch = await self._take()
            try:
                results = await self._flush([item for item, _ in batch])
            except asyncio.CancelledError:
                _fail(batch, Closed("the service shut down during the commit"))
                raise
            except Exception as exc:  # the callers see the error; the loop keeps serving
                log.warning("group commit of %d items failed: %s", len(batch), exc)
                _fail(batch, exc)
            else:
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)

    async def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: what is queued (at least one item), without the items whose caller
        is gone (its request cancelled, e.g. the client disconnected while Postgres was slow):
        such an item is never written, so a client that saw no answer finds nothing stored."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if batch:
                return batch


def _fail(pairs: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
    """`exc` for every caller of `pairs` still waiting."""
    for _, fut in pairs:
        if not fut.done():
            fut.set_exception(exc)


class Closed(Unavailable):
    """The group commit was closed before an item's batch committed (a 503: retry)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after_s=1)
