"""Order status fan-out after a commit: Redis pub/sub (for SSE) and metrics."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis

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


def channel(order_id: str) -> str:
    """The pub/sub channel of one order's status changes."""
    return f"order-status:{order_id}"


class StatusPublisher:
    """Publishes applied status moves. Best effort: Postgres stays the source of truth (an SSE
    client that missed a message reads the order again when it reconnects)."""

    def __init__(self, redis_url: str) -> None:
        self._redis = aioredis.from_url(redis_url)
        self._fan_out = self._redis.register_script(_FAN_OUT)
        self._metrics = Metrics()

    async def publish(self, applied: Sequence[Applied]) -> None:
        done = [a for a in applied if a.applied]
        if not done:
            return
        at = datetime.now(UTC).isoformat()
        args: list[str | bytes] = []
        for a in done:
            oid, status = str(a.move.order_id), a.move.target.value
            message = {"orderId": oid, "status": status, "event": a.move.event, "at": at}
            args += [channel(oid), orjson.dumps(message)]
        try:
            await self._fan_out(keys=[], args=args)
        except Exception as exc:  # Redis down: SSE clients fall back to Postgres on reconnect
            log.warning("status publish to Redis failed: %s", exc)
        for status, n in Counter(a.move.target.value for a in done).items():
            self._metrics.status_changed(status, n)

    async def close(self) -> None:
        await self._redis.aclose()
