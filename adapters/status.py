"""Order status fan-out after a commit: Redis pub/sub (for SSE) and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from adapters.redis_clients import async_client
from core.metrics import Metrics
from domain.decision import Applied

log = logging.getLogger(__name__)
# A batch of status changes in one command: ARGV holds (channel, message) pairs. A pipeline of
# one PUBLISH per order cost an encode and a reply parse per order.
_FAN_OUT = """
for i = 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
"""
_MAX_QUEUED = 50_000  # messages waiting for Redis beyond this are dropped, oldest first
_PER_CALL = 5_000  # messages per script call


def channel(order_id: str) -> str:
    """The pub/sub channel of one order's status changes."""
    return f"order-status:{order_id}"


class StatusPublisher:
    """Publishes applied status moves. Best effort: Postgres stays the source of truth (an SSE
    stream that missed a message reads the order again within its 2 s re-check).

    `post` only queues: one sender task publishes what queued, in commit order, one script call
    per round, so a pipeline cycle never waits for Redis. What queued while Redis was down (or
    beyond `_MAX_QUEUED`) is dropped with a warning, as a failed publish always was."""

    def __init__(self, redis_url: str) -> None:
        self._redis = async_client(redis_url, decode_responses=False)
        self._fan_out = self._redis.register_script(_FAN_OUT)
        self._metrics = Metrics()
        self._queued: list[tuple[str, bytes]] = []  # (channel, message)
        self._sender: asyncio.Task[None] | None = None
        self.dropped = 0

    def post(self, applied: Sequence[Applied]) -> None:
        """Queue the applied moves of a committed transaction for publishing."""
        done = [a for a in applied if a.applied]
        if not done:
            return
        at = datetime.now(UTC).isoformat()
        for a in done:
            oid, status = str(a.move.order_id), a.move.target.value
            message = {"orderId": oid, "status": status, "event": a.move.event, "at": at}
            self._queued.append((channel(oid), orjson.dumps(message)))
        if len(self._queued) > _MAX_QUEUED:  # oldest first
            dropped = len(self._queued) - _MAX_QUEUED
            del self._queued[:dropped]
            self.dropped += dropped
            log.warning("status publish: %d messages dropped, Redis is behind", dropped)
        for status, n in Counter(a.move.target.value for a in done).items():
            self._metrics.status_changed(status, n)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def drained(self) -> None:
        """Wait until everything posted so far was published (or dropped)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def _send(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:_PER_CALL], self._queued[_PER_CALL:]
            try:
                await self._fan_out(keys=[], args=[part for pair in batch for part in pair])
            except Exception as exc:  # Redis down: open streams re-read Postgres every 2 s
                self.dropped += len(batch)
                log.warning("status publish to Redis failed (%d dropped): %s", len(batch), exc)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._redis.aclose()
