"""The after-run checks of `make chaos` (cli/invariants.py) against the real broker: a message
sent twice for one (order, status) counts as a duplicate effect, a redelivered one does not."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer

from cli.invariants import AUDITED_TOPICS, check, end_offsets
from core.settings import Settings
from domain.events import Envelope, Topic, new_event
from domain.ids import uuid7


async def _send(bootstrap: str, events: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                Topic.NOTIFICATION_SEND, value=e.to_json(), key=str(e.order_id).encode()
            )
    finally:
        await producer.stop()


def _sent(oid: uuid.UUID, status: str) -> Envelope:
    return new_event("NotificationSent", oid, customerId="c-inv", channel="email", status=status)


def test_a_message_sent_twice_is_a_duplicate_effect_and_a_redelivery_is_not(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka_bootstrap
    start = asyncio.run(end_offsets(bootstrap, *AUDITED_TOPICS))
    twice, redelivered = uuid7(), uuid7()
    once = _sent(redelivered, "PAID")
    events = [_sent(twice, "PAID"), _sent(twice, "PAID"), once, once, _sent(twice, "SHIPPED")]
    asyncio.run(_send(bootstrap, events))
    ids = [str(twice), str(redelivered)]
    verdict = check(settings.database_url, ids, {}, start, bootstrap)
    assert verdict.duplicates_effects == 1, verdict.details
    assert f"message ('{twice}', 'PAID') sent by 2 distinct events" in verdict.details
    assert verdict.double_charged == 0
