"""A consumer's offset commits, in the background of its loop (docs/adr/ADR-013, amendment)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)
# Longer than one request of the client (aiokafka's request_timeout_ms, 40 s) and its retry:
# past it the client is not coming back by itself.
COMMIT_TIMEOUT_S = 60.0


class Commits:
    """The offsets of handled records, committed in the background: a cycle goes on to its next
    fetch instead of waiting for the broker's answer. One commit at a time, each naming the
    offsets it commits (never the consumer's position, which may be ahead of what was handled),
    and only of partitions still assigned. A failed commit's offsets go with the next one."""

    def __init__(
        self,
        commit: Callable[[dict[TopicPartition, int]], Awaitable[None]],
        assigned: Callable[[], Iterable[TopicPartition]],
    ) -> None:
        self._commit = commit
        self._assigned = assigned
        self._handled: dict[TopicPartition, int] = {}
        self._sent: dict[TopicPartition, int] = {}  # the highest offset sent per partition
        self._task: asyncio.Task[None] | None = None
        self._at = 0.0
        self.failures = 0

    def handled(self, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        """Records whose effects are durable: their offsets may be committed."""
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            self._handled[tp] = max(self._handled.get(tp, 0), r.offset + 1)

    @property
    def _in_flight(self) -> asyncio.Task[None] | None:
        """The commit the broker has not answered yet, if any."""
        task = self._task
        return task if task is not None and not task.done() else None

    @property
    def pending(self) -> bool:
        return bool(self._handled) or self._in_flight is not None

    def start(self, every_s: float) -> None:
        """Start a commit of what was handled, unless one is in flight or the last started less
        than `every_s` ago (each commit is a broker round trip)."""
        if self._in_flight is not None:
            return
        if not self._handled or time.monotonic() - self._at < every_s:
            return
        assigned = set(self._assigned())
        offsets = {
            tp: o
            for tp, o in self._handled.items()
            if tp in assigned and o > self._sent.get(tp, -1)
        }
        self._handled = {}
        self._sent.update(offsets)
        self._at = time.monotonic()
        if offsets:
            self._task = asyncio.create_task(self._send(offsets))

    async def flush(self, timeout_s: float = COMMIT_TIMEOUT_S) -> None:
        """Commit everything handled so far and wait for the broker's answer. A commit the
        client has not answered within `timeout_s` raises `TimeoutError`: the loop then
        rebuilds its consumer instead of waiting on a client that may never answer."""
        while self.pending:
            await self._answer(timeout_s)
            self.start(0.0)
            await self._answer(timeout_s)
            if self.failures and self._handled:
                return  # the broker refused: the next cycle tries again

    async def _answer(self, timeout_s: float) -> None:
        if (task := self._in_flight) is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"offset commit not answered in {timeout_s:.0f}s") from None

    async def _send(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._commit(offsets)
            self.failures = 0
        except Exception as exc:  # a broker restart or a rebalance: retried with the next one
            self.failures += 1
            log.warning(
                "offset commit failed, retried with the next: %s: %s", type(exc).__name__, exc
            )
            for tp, offset in offsets.items():
                self._handled[tp] = max(self._handled.get(tp, 0), offset)
                self._sent[tp] = -1  # not committed: may go again

    def cancel(self) -> None:
        """Forget everything (the consumer is rebuilt and resumes from the last commit)."""
        if self._task is not None:
            self._task.cancel()
        self._task, self._handled, self._sent = None, {}, {}
