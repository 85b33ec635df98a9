"""The status fan-out after a commit (adapters.status.StatusPublisher) against the real Redis:
queued without waiting, published in commit order, dropped with a count when Redis is gone."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import redis.asyncio as aioredis

from adapters.status import StatusPublisher, channel
from core.settings import Settings
from domain.decision import Applied, Move
from domain.model import OrderStatus

_FLOW = (OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED)


def _applied(order_id: uuid.UUID, status: OrderStatus, applied: bool = True) -> Applied:
    return Applied(Move(order_id, status, f"test.{status.value}"), None, applied)


async def test_moves_reach_subscribers_in_commit_order(settings: Settings) -> None:
    order_id = uuid.uuid4()
    listener = aioredis.from_url(settings.redis_url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(channel(str(order_id)))
    publisher = StatusPublisher(settings.redis_url)
    try:
        for status in _FLOW:  # one transaction each, as three pipeline stages would commit them
            # with a move of the same order that did not apply: published, it would come
            # between two of the three read below
            refused = _applied(order_id, OrderStatus.CANCELLED, False)
            publisher.post([_applied(order_id, status), refused])
        await publisher.drained()
        seen: list[str] = []
        async with asyncio.timeout(10):
            while len(seen) < len(_FLOW):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    seen.append(orjson.loads(message["data"])["status"])
        assert seen == [s.value for s in _FLOW]  # the move that did not apply is not published
        assert publisher.dropped == 0
    finally:
        await publisher.close()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()


async def test_redis_gone_drops_with_a_count_and_never_raises() -> None:
    publisher = StatusPublisher("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        publisher.post([_applied(uuid.uuid4(), OrderStatus.PAID) for _ in range(3)])
        await publisher.drained()
        assert publisher.dropped == 3
        publisher.post([_applied(uuid.uuid4(), OrderStatus.SHIPPED)])  # a later post is tried again
        await publisher.drained()
        assert publisher.dropped == 4
    finally:
        await publisher.close()
