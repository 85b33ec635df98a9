"""Order status fan-out after a commit: Redis cache + pub/sub (for SSE), metrics."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis

from core.db import Transition, now
from core.metrics import Metrics

log = logging.getLogger(__name__)
STATUS_TTL_S = 24 * 3600


def channel(order_id: str) -> str:
    """The pub/sub channel of one order's status changes."""
    return f"order-status:{order_id}"


def cache_key(order_id: str) -> str:
    return f"order-status-cache:{order_id}"


class StatusPublisher:
    """Publishes applied transitions. Best effort: Postgres stays the source of truth."""

    def __init__(self, redis_url: str) -> None:
        self._redis = aioredis.from_url(redis_url)
        self._metrics = Metrics()

    async def publish(self, transitions: Sequence[Transition]) -> None:
        applied = [t for t in transitions if t.applied]
        if not applied:
            return
        at = now().isoformat()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for t in applied:
                    oid = str(t.order_id)
                    msg = orjson.dumps(
                        {"orderId": oid, "status": t.status.value, "event": t.event, "at": at}
                    )
                    pipe.set(cache_key(oid), t.status.value, ex=STATUS_TTL_S)
                    pipe.publish(channel(oid), msg)
                await pipe.execute()
        except Exception as exc:  # Redis down: SSE clients fall back to Postgres on reconnect
            log.warning("status publish to Redis failed: %s", exc)
        for status, n in Counter(t.status.value for t in applied).items():
            self._metrics.status_changed(status, n)

    async def close(self) -> None:
        await self._redis.aclose()
