"""Live order status over Server-Sent Events: one event per status change, closing at a
terminal status. Redis pub/sub carries the changes; Postgres is re-read on subscribe and
periodically, so nothing is missed if a message is (Redis restarting, for example)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis

from adapters.orders_repo import Pool, timeline_after
from adapters.status import channel
from domain.model import OrderStatus, is_terminal

_RECHECK_S = 2.0
_MAX_STREAM_S = 600.0


async def status_stream(
    pool: Pool,
    redis: aioredis.Redis,
    order_id: uuid.UUID,
) -> AsyncIterator[dict[str, Any]]:
    """Yield SSE events `{event: "status", id, data}` for each status change of the order."""
    pubsub = redis.pubsub()
    with contextlib.suppress(Exception):  # Redis down: the periodic re-read still works
        await pubsub.subscribe(channel(str(order_id)))
    last_id, last_status = 0, None
    deadline = asyncio.get_running_loop().time() + _MAX_STREAM_S
    try:
        while asyncio.get_running_loop().time() < deadline:
            for row in await timeline_after(pool, order_id, last_id):
                last_id = row["id"]
                if row["status"] == last_status:
                    continue  # a timeline entry that did not change the status
                last_status = row["status"]
                yield {
                    "event": "status",
                    "id": str(row["id"]),
                    "data": orjson.dumps(
                        {
                            "orderId": str(order_id),
                            "status": row["status"],
                            "event": row["event"],
                            "at": row["at"].isoformat(),
                        }
                    ).decode(),
                }
                if is_terminal(OrderStatus(row["status"])):
                    return
            # wait for a pub/sub nudge (or the re-check period), then re-read Postgres
            try:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=_RECHECK_S)
            except Exception:  # not subscribed (Redis down): fall back to the periodic re-read
                await asyncio.sleep(_RECHECK_S)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class LiveStatus:
    """The SSE stream's resources: the read pool and the Redis client (pub/sub)."""

    def __init__(self, pool: Pool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis

    def stream(self, order_id: uuid.UUID) -> AsyncIterator[dict[str, Any]]:
        return status_stream(self._pool, self._redis, order_id)
