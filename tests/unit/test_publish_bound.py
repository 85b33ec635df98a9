"""The outbox relay's wait for Kafka is bounded (adapters.kafka.publish_rows): the idempotent
producer retries a send for as long as the broker is away, and the relay waited in the
transaction that deleted the batch's rows, its xid holding back Postgres's cleanup and its
error path never reached, for the whole outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.kafka import publish_rows


class _Builder:
    def append(self, **kwargs: Any) -> object:
        return object()


class _SilentBroker:
    """Takes every batch and never acknowledges one."""

    def __init__(self) -> None:
        self.sent = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> _Builder:
        return _Builder()

    async def send_batch(
        self, builder: _Builder, topic: str, partition: int
    ) -> asyncio.Future[None]:
        self.sent += 1
        return asyncio.get_running_loop().create_future()


def test_a_batch_kafka_never_acknowledges_times_out() -> None:
    broker = _SilentBroker()
    rows = [("order.created", "k", b"{}")]
    with pytest.raises(TimeoutError):
        asyncio.run(publish_rows(broker, rows, timeout_s=0.05))
    assert broker.sent == 1
