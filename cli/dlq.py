"""`orders dlq`: list dead-lettered messages and replay chosen ones to their source topic."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from adapters.kafka import client_options, partition_of, partitions_of
from core.settings import get_settings
from domain.events import Topic

app = typer.Typer(help="Dead-letter topics: list and replay.", no_args_is_help=True)
console = Console()


async def _read(topic: str, limit: int) -> list[Any]:
    bootstrap = get_settings().kafka_bootstrap
    parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
    if not parts:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options()
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(r for rs in batch.values() for r in rs)
        records.sort(key=lambda r: r.timestamp)
        return records[-limit:]
    finally:
        await consumer.stop()


def _dlq_name(topic: str) -> str:
    name = topic if topic.endswith(".dlq") else Topic.dlq(topic)
    if name.removesuffix(".dlq") not in Topic.ALL:
        raise typer.BadParameter(f"unknown topic {topic}; one of: {', '.join(Topic.ALL)}")
    return name


@app.command("list")
def list_(
    topic: Annotated[str, typer.Argument(help="source topic, e.g. order.created")],
    limit: Annotated[int, typer.Option(help="newest N messages")] = 50,
) -> None:
    """Show the newest dead-lettered messages of TOPIC with why they were rejected."""
    name = _dlq_name(topic)
    records = asyncio.run(_read(name, limit))
    table = Table(title=f"{name}: {len(records)} message(s)")
    for col in ("partition", "offset", "source", "reason", "value"):
        table.add_column(col)
    for r in records:
        h = {k: v.decode(errors="replace") for k, v in r.headers}
        source = (
            f"{h.get('dlq.source.topic')}[{h.get('dlq.source.partition')}]@"
            f"{h.get('dlq.source.offset')}"
        )
        value = (r.value or b"")[:60].decode(errors="replace")
        table.add_row(str(r.partition), str(r.offset), source, h.get("dlq.reason", ""), value)
    console.print(table)


@app.command()
def replay(
    topic: Annotated[str, typer.Argument(help="source topic, e.g. order.created")],
    partition: Annotated[int, typer.Option(help="DLQ partition of the message")],
    offset: Annotated[int, typer.Option(help="DLQ offset of the message")],
) -> None:
    """Publish one dead-lettered message again to its source topic (after fixing the cause)."""
    name = _dlq_name(topic)

    async def _replay() -> str:
        records = await _read(name, 1_000_000)
        match = [r for r in records if r.partition == partition and r.offset == offset]
        if not match:
            raise typer.BadParameter(f"no message at {name}[{partition}]@{offset}")
        record = match[0]
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
            meta = await producer.send_and_wait(
                source, value=record.value, key=record.key, partition=target, headers=headers
            )
            return f"replayed to {source}[{meta.partition}]@{meta.offset}"
        finally:
            await producer.stop()

    console.print(asyncio.run(_replay()))
