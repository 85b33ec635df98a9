"""How long the flow's events waited to be published, per topic, read back from Kafka after a run.

An event's wait is its record's Kafka timestamp (the relay's producer sets it when it appends the
record, right after taking the row from the outbox) minus the event's `occurredAt` (set by the
stage that wrote it, inside its transaction): the writer's commit, the row's time in the outbox
and the relay's take. The rest of a hop of `e2e_hops_ms` is Kafka's delivery and the next
stage's fetch and work up to its own event. Both clocks are this machine's on the local stack;
on several hosts the figures include their clocks' offset.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters.kafka import client_options
from bench.stats import p50_p99
from domain.events import Topic

# The topics on an order's way to SHIPPED, one per hop of `bench.stats.HOPS`.
FLOW = (
    Topic.ORDER_CREATED,
    Topic.INVENTORY_RESERVED,
    Topic.PAYMENT_AUTHORIZED,
    Topic.SHIPPING_UPDATED,
)
_READ_LIMIT_S = 60.0


def wait_ms(value: bytes | None, timestamp_ms: int) -> float | None:
    """A record's publish wait in ms (None for a value that is not an event envelope)."""
    try:
        occurred = orjson.loads(value or b"")["occurredAt"]
        return timestamp_ms - datetime.fromisoformat(occurred).timestamp() * 1000
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def summarize(
    records: Iterable[tuple[str, int, bytes | None]],
    topics: Sequence[str],
    start_ms: int,
    end_ms: int,
) -> dict[str, dict[str, float]]:
    """p50 / p99 ms and the count of events per topic, over the `(topic, timestamp, value)`
    records published in `[start_ms, end_ms)`; a topic without events has its count alone."""
    waits: dict[str, list[float]] = {t: [] for t in topics}
    for topic, ts, value in records:
        if topic in waits and start_ms <= ts < end_ms:
            wait = wait_ms(value, ts)
            if wait is not None:
                waits[topic].append(wait)
    return {t: p50_p99(w) | {"events": len(w)} for t, w in waits.items()}


async def publish_waits(
    bootstrap: str, start_s: float, end_s: float, topics: Sequence[str] = FLOW
) -> dict[str, dict[str, float]]:
    """`summarize` over what `topics` hold from `start_s` to `end_s` (epoch seconds): each
    partition is read from the first record at `start_s` up to its end when the read began."""
    consumer = AIOKafkaConsumer(
        *topics,
        group_id=None,  # no group: every partition of the topics is assigned to this reader
        bootstrap_servers=bootstrap,
        client_id="bench-publish-wait",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client_options(),
    )
    await consumer.start()
    start_ms, end_ms = int(start_s * 1000), int(end_s * 1000)
    records: list[tuple[str, int, bytes | None]] = []
    try:
        parts = sorted(consumer.assignment())
        firsts = await consumer.offsets_for_times(dict.fromkeys(parts, start_ms))
        ends = await consumer.end_offsets(parts)
        todo: dict[TopicPartition, int] = {}  # partition → the offset where its read ends
        for tp in parts:
            first = firsts[tp]
            if first is None:
                consumer.pause(tp)
            else:
                consumer.seek(tp, first.offset)
                todo[tp] = ends[tp]
        deadline = time.monotonic() + _READ_LIMIT_S
        while todo and time.monotonic() < deadline:
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            for tp, got in batches.items():
                records += [(tp.topic, r.timestamp, r.value) for r in got if r.offset < todo[tp]]
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return summarize(records, topics, start_ms, end_ms)
