"""The flow topics keep KAFKA_RETENTION_HOURS; their dead-letter topics as long as their events
can still be claimed, DEDUPE_RETENTION_HOURS (adapters/kafka.py, ADR-012): with the flow's 24 h
a dead letter was gone a day after the failure, and with it the one way to replay it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from adapters.kafka import client_options
from core.settings import Settings
from domain.events import Topic


async def _retention_ms(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        answers: list[Any] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        )
    finally:
        await admin.close()
    found = {}
    for answer in answers:
        for _code, _message, _kind, name, entries in answer.resources:
            found[name] = next(int(e[1]) for e in entries if e[0] == "retention.ms")
    return found


def test_dead_letters_are_kept_as_long_as_their_events_can_be_replayed(
    settings: Settings,
) -> None:
    topics = [Topic.PAYMENT_AUTHORIZED, Topic.dlq(Topic.PAYMENT_AUTHORIZED)]
    found = asyncio.run(_retention_ms(settings.kafka_bootstrap, topics))
    hour = 3_600_000
    assert found[topics[0]] == settings.kafka_retention_hours * hour
    dlq_hours = max(settings.kafka_retention_hours, settings.dedupe_retention_hours)
    assert found[topics[1]] == dlq_hours * hour
