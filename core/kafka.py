"""Kafka adapters: an idempotent producer, topic administration."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from domain.events import Topic

PARTITIONS = 4


def all_topics() -> list[str]:
    """Every topic the platform uses: the flow topics and one dead-letter topic per topic."""
    return [*Topic.ALL, *(Topic.dlq(t) for t in Topic.ALL)]


async def start_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """An idempotent, acks=all producer with a short linger for batching."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
    )
    await producer.start()
    return producer


async def ensure_topics(bootstrap: str, partitions: int = PARTITIONS) -> list[str]:
    """Create any missing topic; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="orders-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics() if t not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        return missing
    finally:
        await admin.close()


async def missing_topics(bootstrap: str) -> list[str]:
    """Topics the platform needs that the broker does not have yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="orders-check")
    await asyncio.wait_for(admin.start(), timeout=10)
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [t for t in all_topics() if t not in existing]


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of `topic` (empty when it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="orders-describe")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0].get("error_code"):
        return []
    return sorted(int(p["partition"]) for p in described[0]["partitions"])
