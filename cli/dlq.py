"""`orders dlq`: list dead-lettered messages and replay chosen ones to their source topic."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from adapters.kafka import client_options, partition_of, partitions_of
from cli import render
from core.settings import get_settings
from domain.events import Envelope, Topic
from domain.ids import uuid7_time_ms

app = typer.Typer(help="Dead-letter topics: list and replay.", no_args_is_help=True)


@app.callback()
def _quiet_client() -> None:
    """A broker that does not answer is one line (`orders` says which part to look at), not
    the client's log of each attempt as well."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


console = Console()
_READ_S = 30.0  # reading one message from its offset


async def _consumer() -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=get_settings().kafka_bootstrap,
        enable_auto_commit=False,
        **client_options(),
    )
    await consumer.start()
    return consumer


async def _read(topic: str, limit: int) -> list[Any]:
    """The newest `limit` messages of `topic`, oldest first. Each partition is read from `limit`
    messages before its end (the newest `limit` overall are among those), not from its start: a
    dead-letter topic keeps its messages for the topics' retention and may be large."""
    parts = [
        TopicPartition(topic, p) for p in await partitions_of(get_settings().kafka_bootstrap, topic)
    ]
    if not parts:  # not "0 messages": nothing can have been dead-lettered to it
        bootstrap = get_settings().kafka_bootstrap
        raise LookupError(f"{topic} does not exist on {bootstrap} (orders topics creates it)")
    consumer = await _consumer()
    try:
        consumer.assign(parts)
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, max(starts[tp], ends[tp] - limit))
        records: list[Any] = []
        deadline = time.monotonic() + _READ_S  # a broker gone meanwhile: getmany gets nothing
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {_READ_S:g}s")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, rs in batch.items():  # what arrived past the end is not listed
                records.extend(r for r in rs if r.offset < ends[tp])
        records.sort(key=lambda r: r.timestamp)
        return records[-limit:]
    finally:
        await consumer.stop()


async def _one(topic: str, partition: int, offset: int) -> Any | None:
    """The message at `topic[partition]@offset`, read from there (None: no such message)."""
    tp = TopicPartition(topic, partition)
    if partition not in await partitions_of(get_settings().kafka_bootstrap, topic):
        return None
    consumer = await _consumer()
    try:
        consumer.assign([tp])
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if not start <= offset < end:
            return None
        consumer.seek(tp, offset)
        deadline = time.monotonic() + _READ_S
        while time.monotonic() < deadline:
            for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                if record.offset >= offset:  # a compacted or aborted offset has no message
                    return record if record.offset == offset else None
        raise TimeoutError(f"{topic}[{partition}]@{offset} not read within {_READ_S:g}s")
    finally:
        await consumer.stop()


def not_copied(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """Why a dead letter has no value to replay, or None: a record too large to copy with the
    dead letter's headers went without it (consumers/deadletter.py)."""
    given = dict(headers)
    if "dlq.omitted" not in given:
        return None
    source = b"[".join(
        (given.get("dlq.source.topic", b"?"), given.get("dlq.source.partition", b"?"))
    )
    where = f"{source.decode()}]@{given.get('dlq.source.offset', b'?').decode()}"
    return f"this dead letter has no value ({given['dlq.omitted'].decode()}): the record is {where}"


def too_old_to_replay(value: bytes | None, now_ms: int, dedupe_hours: int) -> str | None:
    """Why a dead letter cannot be replayed, or None. Its event is claimed by id in
    `processed_events`, whose partitions go after DEDUPE_RETENTION_HOURS (ADR-012): an older
    event would be refused by every stage and dead-lettered again. A value that does not parse
    (poison) has no age to judge: the operator decides."""
    try:
        event = Envelope.from_json(value or b"")
    except ValueError:
        return None
    made_ms = uuid7_time_ms(event.event_id)
    if made_ms is None or now_ms - made_ms < dedupe_hours * 3_600_000:
        return None
    age_h = (now_ms - made_ms) / 3_600_000
    return (
        f"event {event.event_id} of order {event.order_id} is {age_h:.0f} h old, past "
        f"DEDUPE_RETENTION_HOURS={dedupe_hours}: its dedupe record is gone, so every stage "
        "would refuse it and it would come back here. Settle the order by hand instead (an "
        "admin's POST /api/orders/{id}/cancel while it is not shipped)"
    )


def _dlq_name(topic: str) -> str:
    name = topic if topic.endswith(".dlq") else Topic.dlq(topic)
    if name.removesuffix(".dlq") not in Topic.ALL:
        raise typer.BadParameter(f"unknown topic {topic}; one of: {', '.join(Topic.ALL)}")
    return name


@app.command("list")
def list_(
    topic: Annotated[str, typer.Argument(help="source topic, e.g. order.created")],
    limit: Annotated[int, typer.Option(help="newest N messages", min=1)] = 50,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="a JSON array on stdout, each message whole (key, value)"),
    ] = False,
) -> None:
    """Show the newest dead-lettered messages of TOPIC with why they were rejected."""
    name = _dlq_name(topic)
    try:
        letters = [DeadLetter.of(r) for r in asyncio.run(_read(name, limit))]
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        print(render.as_json(letters))
        return
    table = Table(title=f"{name}: {len(letters)} message(s)")
    for col in ("partition", "offset", "source", "reason", "value"):
        table.add_column(col)
    for d in letters:
        table.add_row(str(d.partition), str(d.offset), d.source_text, d.reason, d.value[:60])
    console.print(table)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message of a dead-letter topic as `list` shows it (the value decoded as UTF-8, an
    undecodable byte replaced: a poison message may be any bytes)."""

    partition: int
    offset: int
    timestamp_ms: int
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    reason: str
    key: str | None
    value: str
    headers: dict[str, str]

    @classmethod
    def of(cls, record: Any) -> DeadLetter:
        h = {k: v.decode(errors="replace") for k, v in record.headers}
        return cls(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            source_topic=h.get("dlq.source.topic"),
            source_partition=_int(h.get("dlq.source.partition")),
            source_offset=_int(h.get("dlq.source.offset")),
            reason=h.get("dlq.reason", ""),
            key=None if record.key is None else record.key.decode(errors="replace"),
            value=(record.value or b"").decode(errors="replace"),
            headers=h,
        )

    @property
    def source_text(self) -> str:
        return f"{self.source_topic}[{self.source_partition}]@{self.source_offset}"


def _int(text: str | None) -> int | None:
    """A header's number, or None (any header may be anything: a poison message's too)."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@app.command()
def replay(
    topic: Annotated[str, typer.Argument(help="source topic, e.g. order.created")],
    partition: Annotated[int, typer.Option(help="DLQ partition of the message")],
    offset: Annotated[int, typer.Option(help="DLQ offset of the message")],
) -> None:
    """Publish one dead-lettered message again to its source topic (after fixing the cause)."""
    name = _dlq_name(topic)

    async def _replay() -> str:
        record = await _one(name, partition, offset)
        if record is None:
            raise typer.BadParameter(f"no message at {name}[{partition}]@{offset}")
        refusal = not_copied(record.headers) or too_old_to_replay(
            record.value, int(time.time() * 1000), get_settings().dedupe_retention_hours
        )
        if refusal:
            raise typer.BadParameter(refusal)
        producer = AIOKafkaProducer(
            bootstrap_servers=get_settings().kafka_bootstrap,
            enable_idempotence=True,
            acks="all",
            **client_options(),
        )
        await producer.start()
        try:
            source = dict(record.headers).get("dlq.source.topic", name[:-4].encode()).decode()
            headers = [("dlq.replayed.from", f"{name}[{partition}]@{offset}".encode())]
            # the partition every other event of its order is on (`publish_rows`), so the
            # replayed event is handled in order with them, not by the client's own partitioner
            target = None
            if record.key is not None:
                count = len(await producer.partitions_for(source))
                target = partition_of(record.key.decode(), count)
            sent = producer.send_and_wait(
                source, value=record.value, key=record.key, partition=target, headers=headers
            )
            try:  # the idempotent producer retries for as long as the broker is away
                meta = await asyncio.wait_for(sent, _READ_S)
            except TimeoutError:
                raise TimeoutError(
                    f"Kafka did not acknowledge the replay within {_READ_S:g}s: it may or may not "
                    "have been published (a second replay is harmless: the event keeps its id)"
                ) from None
            return f"replayed to {source}[{meta.partition}]@{meta.offset}"
        finally:
            await producer.stop()

    console.print(asyncio.run(_replay()))
