"""`bench.publish_wait.publish_waits` against the real broker: records with known timestamps and
`occurredAt` on a scratch topic, read back over a window by Kafka's time index."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters.kafka import client_options
from bench.publish_wait import publish_waits
from core.settings import Settings


def _event(occurred_ms: float) -> bytes:
    at = datetime.fromtimestamp(occurred_ms / 1000, UTC).isoformat()
    return b'{"eventId":"e","type":"OrderCreated","occurredAt":"%s"}' % at.encode()


async def _scenario(bootstrap: str, topic: str) -> dict[str, dict[str, float]]:
    admin = AIOKafkaAdminClient(**client_options(), bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    start_ms = int(time.time() * 1000) - 60_000
    producer = AIOKafkaProducer(**client_options(), bootstrap_servers=bootstrap)
    await producer.start()
    try:
        # before the window, 40 inside it (waits 10..49 ms, both partitions), one at its end
        sends = [(0, start_ms - 5_000, 9_999.0)]
        sends += [(i % 2, start_ms + 1_000 + 10 * i, 10.0 + i) for i in range(40)]
        sends += [(1, start_ms + 30_000, 9_999.0)]
        for partition, ts, waited in sends:
            await producer.send_and_wait(
                topic, _event(ts - waited), partition=partition, timestamp_ms=ts
            )
        await producer.send_and_wait(topic, b"not an event", partition=0, timestamp_ms=start_ms + 2)
    finally:
        await producer.stop()
    try:
        return await publish_waits(bootstrap, start_ms / 1000, (start_ms + 30_000) / 1000, [topic])
    finally:
        admin = AIOKafkaAdminClient(**client_options(), bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


def test_waits_over_the_window_from_the_broker(settings: Settings) -> None:
    topic = f"test.publish-wait.{uuid.uuid4().hex[:8]}"
    got = asyncio.run(_scenario(settings.kafka_bootstrap, topic))
    assert got == {topic: {"p50": 29.0, "p99": 49.0, "events": 40}}
