"""Kafka adapters: the clients' connection options, an idempotent producer, topic administration."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.helpers import create_ssl_context

from core.settings import KAFKA_SEGMENT_HOURS, Settings, get_settings
from domain.events import Topic

_STOP_S = 5.0  # a producer's stop waits this long for a dead broker at most


def client_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments every aiokafka client (producer, consumer, admin) is built with, so no
    call site names the broker's authentication itself: nothing with PLAINTEXT (a broker
    without logins: the local stack's with KAFKA_AUTH=none), SASL/SCRAM with KAFKA_USERNAME and
    KAFKA_PASSWORD (the local stack's default, compose, Kubernetes), over TLS for SASL_SSL, the
    broker's certificate checked against KAFKA_SSL_CAFILE or else the system's CAs (ADR-011)."""
    s = settings or get_settings()
    if s.kafka_security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {
        "security_protocol": s.kafka_security_protocol,
        "sasl_mechanism": s.kafka_sasl_mechanism,
        "sasl_plain_username": s.kafka_username,
        "sasl_plain_password": s.kafka_password,
    }
    if s.kafka_security_protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context(cafile=s.kafka_ssl_cafile or None)
    return options


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
        **client_options(),
    )
    try:
        await producer.start()
    except BaseException:  # cancelled too: a half-started client keeps a connection and a task
        await stop_quietly(producer)
        raise
    return producer


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


# stops that outlasted their wait, finishing in the background (referenced until they end)
_STOPPING: set[asyncio.Task[None]] = set()


async def stop_quietly(client: _Stoppable, timeout_s: float = _STOP_S) -> None:
    """Stop an aiokafka client, waiting at most `timeout_s` for a dead broker; its failure or
    timeout is swallowed (the caller drops the client or builds a new one either way). A stop
    that takes longer is left to finish, not cancelled: aiokafka marks a consumer closed before
    it leaves its group, so a cancelled stop never closed its fetcher and connections (each
    rebuild of a consumer stuck in a join leaked one, with its buffered records)."""
    task = asyncio.ensure_future(client.stop())
    await asyncio.wait({task}, timeout=timeout_s)
    if task.done():
        with contextlib.suppress(BaseException):
            task.result()
        return
    _STOPPING.add(task)
    task.add_done_callback(_stopped)


def _stopped(task: asyncio.Task[None]) -> None:
    _STOPPING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed late stop is not "never retrieved" noise


class SharedProducer:
    """The one producer of a process whose tasks publish concurrently (the relay's publishing
    loop and its health check). The first task that needs it starts it and the others wait for
    that start: each used to start its own, and every producer but the last was left open,
    with its connection and sender task, until the garbage collector found it."""

    def __init__(self, start: Callable[[], Awaitable[AIOKafkaProducer]]) -> None:
        self._start = start
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                self._producer = await self._start()
            return self._producer

    async def get_within(self, timeout_s: float) -> AIOKafkaProducer:
        """`get`, waiting at most `timeout_s` (TimeoutError). A start that takes longer goes on
        for the other users, and its failure is theirs to see, not a stray task's warning."""
        task = asyncio.ensure_future(self.get())
        task.add_done_callback(_retrieve)
        return await asyncio.wait_for(asyncio.shield(task), timeout_s)

    async def reset(self) -> None:
        """Stop the producer (after a failed publish); the next `get` starts a new one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_quietly(producer)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def partition_of(key: str, partitions: int) -> int:
    """The partition of a key: crc32 in C, where aiokafka's default murmur2 runs in Python.

    Every producer of the flow topics goes through `publish_rows`, so all events of one order
    land on one partition of each topic and keep their order.
    """
    return zlib.crc32(key.encode()) % partitions


async def publish_rows(
    producer: AIOKafkaProducer,
    rows: Sequence[tuple[str, str, bytes]],
    timeout_s: float | None = None,
) -> None:
    """Publish `(topic, key, value)` rows in order and wait until Kafka acknowledged all, for
    at most `timeout_s` (then `TimeoutError`: the idempotent producer retries a send for as
    long as the broker is away, and never gives up by itself).

    One record batch per (topic, partition) instead of one `send` per message: a message then
    costs an append to a C batch builder, not a future, a partitioner call and a lookup each.
    """
    async with asyncio.timeout(timeout_s):
        await _publish_rows(producer, rows)


async def _publish_rows(producer: AIOKafkaProducer, rows: Sequence[tuple[str, str, bytes]]) -> None:
    counts: dict[str, int] = {}
    batches: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for topic, key, value in rows:
        if topic not in counts:
            counts[topic] = len(await producer.partitions_for(topic))
        builders = batches[(topic, partition_of(key, counts[topic]))]
        raw_key = key.encode()
        if builders and builders[-1].append(key=raw_key, value=value, timestamp=None) is not None:
            continue
        builder = producer.create_batch()  # none yet, or the last one is full
        if builder.append(key=raw_key, value=value, timestamp=None) is None:
            raise ValueError(f"a message of {len(value)} bytes does not fit a Kafka batch")
        builders.append(builder)
    futures = [
        await producer.send_batch(builder, topic, partition=partition)
        for (topic, partition), builders in batches.items()
        for builder in builders
    ]
    await asyncio.gather(*futures)


def retention_configs(retention_hours: int) -> dict[str, str]:
    """Topic configs that bound how long a message can be read (ADR-012): `retention.ms`, and
    hourly segments (Kafka deletes whole segments, once their newest message expired)."""
    return {
        "retention.ms": str(retention_hours * 3_600_000),
        "segment.ms": str(min(retention_hours, KAFKA_SEGMENT_HOURS) * 3_600_000),
    }


class TopicsRefused(RuntimeError):
    """The broker answered and refused a topic's configuration: no retry makes it accept."""


async def ensure_topics(
    bootstrap: str, partitions: int, retention_hours: int | None = None
) -> list[str]:
    """Create any missing topic with `partitions` partitions and grow any topic that has fewer
    (Kafka cannot shrink one); set every topic's retention (default: KAFKA_RETENTION_HOURS; the
    dead-letter topics DEDUPE_RETENTION_HOURS if longer: a dead letter can be replayed while
    its event can still be claimed, and the flow's 24 h left a stuck order a day to be mended);
    return the names created or grown."""
    settings = get_settings()
    hours = settings.kafka_retention_hours if retention_hours is None else retention_hours
    flow, dlq = (
        retention_configs(hours),
        retention_configs(max(hours, settings.dedupe_retention_hours)),
    )

    def configs_of(topic: str) -> dict[str, str]:
        return dlq if topic.endswith(".dlq") else flow

    async with _admin(bootstrap, "orders-admin") as admin:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics() if t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(t, partitions, replication_factor=1, topic_configs=configs_of(t))
                    for t in missing
                ]
            )
        answers = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs_of(t)) for t in all_topics()]
        )
        refused = [r for a in answers for r in a.resources if r[0] != 0]
        if refused:
            raise TopicsRefused(f"Kafka refused the retention configs: {refused}")
        present = [t for t in all_topics() if t in existing]
        described = await admin.describe_topics(present) if present else []
        grow = {
            d["topic"]: NewPartitions(total_count=partitions)
            for d in described
            if len(d["partitions"]) < partitions
        }
        if grow:
            await admin.create_partitions(grow)
        return [*missing, *grow]


async def missing_topics(bootstrap: str) -> list[str]:
    """Topics the platform needs that the broker does not have yet."""
    async with _admin(bootstrap, "orders-check", start_timeout_s=10) as admin:
        existing = set(await admin.list_topics())
    return [t for t in all_topics() if t not in existing]


async def partitions_of(bootstrap: str, topic: str, settings: Settings | None = None) -> list[int]:
    """The partition numbers of `topic` (empty when it does not exist); `settings`: how to log
    in when not this process's (a harness's broker)."""
    async with _admin(bootstrap, "orders-describe", settings=settings) as admin:
        described = await admin.describe_topics([topic])
    if not described or described[0].get("error_code"):
        return []
    return sorted(int(p["partition"]) for p in described[0]["partitions"])


async def describe_groups(bootstrap: str, groups: Sequence[str]) -> list[str]:
    """The broker's view of each consumer group, a line each: its state (Stable,
    PreparingRebalance, CompletingRebalance, Empty, Dead) and its members' ids and hosts. A
    member the broker still counts after its process died is one a rebalance waits for."""
    lines = []
    async with _admin(bootstrap, "orders-diagnose") as admin:
        for name in groups:  # one per request: aiokafka 0.14 misreads an answer naming several
            for answer in await admin.describe_consumer_groups([name]):
                for _error, group, state, _type, _protocol, members in answer.groups:
                    who = ", ".join(f"{m[0]} ({m[2]})" for m in members) or "no members"
                    lines.append(f"{group}: {state}, {len(members)} member(s): {who}")
    return lines


@asynccontextmanager
async def _admin(
    bootstrap: str,
    client_id: str,
    start_timeout_s: float | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on the way out (`start_timeout_s`: bound its start)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=client_id, **client_options(settings)
    )
    await asyncio.wait_for(admin.start(), timeout=start_timeout_s)
    try:
        yield admin
    finally:
        await admin.close()
