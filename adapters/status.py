"""Order status fan-out after a commit: Redis cache + pub/sub (for SSE), metrics."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis

from adapters.pg import Transition, now
from core.metrics import Metrics

log = logging.getLogger(__name__)
STATUS_TTL_S = 24 * 3600
# A batch of status changes in one command: for each order, cache its status and publish the
# change on its channel. KEYS = cache keys; ARGV = ttl, then (status, channel, message) per key.
# A pipeline of SET + PUBLISH per order cost two encodes and two reply parses per order.
_FAN_OUT = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 3
  redis.call('SET', key, ARGV[at], 'EX', ttl)
  redis.call('PUBLISH', ARGV[at + 1], ARGV[at + 2])
end
return #KEYS
"""


def channel(order_id: str) -> str:
    """The pub/sub channel of one order's status changes."""
    return f"order-status:{order_id}"


def cache_key(order_id: str) -> str:
    return f"order-status-cache:{order_id}"


class StatusPublisher:
    """Publishes applied transitions. Best effort: Postgres stays the source of truth."""

    def __init__(self, redis_url: str) -> None:
        self._redis = aioredis.from_url(redis_url)
        self._fan_out = self._redis.register_script(_FAN_OUT)
        self._metrics = Metrics()

    async def publish(self, transitions: Sequence[Transition]) -> None:
        applied = [t for t in transitions if t.applied]
        if not applied:
            return
        at = now().isoformat()
        keys: list[str] = []
        args: list[str | bytes | int] = [STATUS_TTL_S]
        for t in applied:
            oid, status = str(t.order_id), t.status.value
            keys.append(cache_key(oid))
            message = {"orderId": oid, "status": status, "event": t.event, "at": at}
            args += [status, channel(oid), orjson.dumps(message)]
        try:
            await self._fan_out(keys=keys, args=args)
        except Exception as exc:  # Redis down: SSE clients fall back to Postgres on reconnect
            log.warning("status publish to Redis failed: %s", exc)
        for status, n in Counter(t.status.value for t in applied).items():
            self._metrics.status_changed(status, n)

    async def close(self) -> None:
        await self._redis.aclose()
