"""A dead letter: a record the consumer loop gives up on goes to `<topic>.dlq`, headers saying
where it came from and why (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord

from domain.events import Topic

log = logging.getLogger(__name__)
_DLQ_SEND_S = 30.0  # a dead letter's send


async def dead_letter(
    producer: AIOKafkaProducer, group: str, record: ConsumerRecord[Any, Any], reason: str
) -> None:
    """Send `record` to its topic's DLQ, bounded: the idempotent producer retries a send for as
    long as the broker is away; past the bound the loop rebuilds and the record comes back (the
    DLQ is at least once)."""
    headers = [
        ("dlq.reason", reason[:500].encode()),
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
        ("dlq.group", group.encode()),
        ("dlq.at", datetime.now(UTC).isoformat().encode()),
    ]
    await asyncio.wait_for(
        producer.send_and_wait(
            Topic.dlq(record.topic), value=record.value, key=record.key, headers=headers
        ),
        _DLQ_SEND_S,
    )
    log.warning("consumer %s: %s@%s sent to DLQ: %s", group, record.topic, record.offset, reason)
