"""A consumer's lag report (consumers.loop.ConsumerLoop._update_lag) never holds up its cycle: a
partition without a valid position (after a rebalance) is left out instead of waited for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers import loop as consumer_loop
from consumers.base import Handler
from consumers.loop import ConsumerLoop
from core.registry import SHIPPING_GROUP
from core.settings import Settings

KNOWN, RESETTING = TopicPartition("payment.authorized", 0), TopicPartition("payment.authorized", 1)


class _Consumer:
    """Stands in for AIOKafkaConsumer: one partition at offset 7 of 10, one whose position
    never comes (aiokafka's `position` waits until the fetcher has one)."""

    def assignment(self) -> set[TopicPartition]:
        return {KNOWN, RESETTING}

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    async def position(self, tp: TopicPartition) -> int:
        if tp == RESETTING:
            await asyncio.Event().wait()
        return 7


class _Idle:
    async def handle(self, events: Any) -> None:
        raise AssertionError("no cycle is handled in this test")


async def test_a_partition_without_a_position_is_left_out_of_the_lag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_loop, "_POSITION_WAIT_S", 0.05)
    handler: Handler = _Idle()
    loop = ConsumerLoop(SHIPPING_GROUP, handler, Settings())
    loop._task.cancel()  # the test drives `_update_lag` itself: no broker
    await asyncio.gather(loop._task, return_exceptions=True)
    loop._consumer = _Consumer()
    await asyncio.wait_for(loop._update_lag(), 2)
    assert loop.health()["lag"] == 3
