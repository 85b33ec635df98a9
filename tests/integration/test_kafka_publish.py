"""`publish_rows` (the outbox relay's batched produce) against the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters.kafka import client_options, partition_of, publish_rows, start_producer
from core.settings import Settings


async def _publish_and_read(
    bootstrap: str, rows: list[tuple[str, str, bytes]], total: int
) -> list[ConsumerRecord[Any, Any]]:
    topics = sorted({t for t, _, _ in rows})
    admin = AIOKafkaAdminClient(**client_options(), bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=t, num_partitions=4, replication_factor=1) for t in topics]
        )
    finally:
        await admin.close()
    producer = await start_producer(bootstrap, "test-publish")
    try:
        await publish_rows(producer, rows)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        *topics,
        **client_options(),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: list[ConsumerRecord[Any, Any]] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < total:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.extend(records)
    finally:
        await consumer.stop()
        admin = AIOKafkaAdminClient(**client_options(), bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()
    return seen


def test_publish_rows_keeps_every_key_on_one_partition_in_order(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    topics = [f"test.publish.{run}.a", f"test.publish.{run}.b"]
    keys = [f"order-{i}" for i in range(12)]
    # 100 KB values: a 256 KB record batch holds two, so each partition needs several batches
    rows = [
        (topics[n % 2], keys[n % len(keys)], f"{n}:".encode() + b"x" * 100_000) for n in range(60)
    ]
    seen = asyncio.run(_publish_and_read(settings.kafka_bootstrap, rows, len(rows)))

    assert len(seen) == len(rows)  # nothing lost, nothing duplicated
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for record in sorted(seen, key=lambda r: (r.topic, r.partition, r.offset)):
        key = record.key.decode()
        assert record.partition == partition_of(key, 4)
        by_key[(record.topic, key)].append(int(record.value.split(b":", 1)[0]))
    for (topic, key), sequence in by_key.items():
        expected = [n for n, (t, k, _) in enumerate(rows) if t == topic and k == key]
        assert sequence == expected, f"{topic}/{key} out of order: {sequence}"
