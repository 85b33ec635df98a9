"""A dead letter: a record the consumer loop gives up on goes to `<topic>.dlq`, headers saying
where it came from and why (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from pydantic import ValidationError

from core.errors import one_line
from domain.events import Topic

log = logging.getLogger(__name__)
_DLQ_SEND_S = 30.0  # a dead letter's send
_KEY_KEPT = 256  # bytes of the key a dead letter keeps when the record is too large to copy
# a replayed record's link to the dead letter it came from (`orders dlq replay`): one that fails
# again keeps it, so its new dead letter names the earlier one
_KEPT_HEADERS = frozenset({"dlq.replayed.from"})


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
        *((k, v) for k, v in (record.headers or ()) if k in _KEPT_HEADERS),
    ]
    dlq = Topic.dlq(record.topic)

    async def send(value: bytes | None, key: bytes | None, extra: list[tuple[str, bytes]]) -> None:
        await asyncio.wait_for(
            producer.send_and_wait(dlq, value=value, key=key, headers=[*headers, *extra]),
            _DLQ_SEND_S,
        )

    try:
        await send(record.value, record.key, [])
    except MessageSizeTooLargeError:
        # a record near the limit no longer fits with the headers: the loop would rebuild the
        # member and fetch it again for ever. The dead letter then names it without its value;
        # it stays in its topic. (The producer refuses it before sending: its max_request_size,
        # 1 MiB, is below the broker's message.max.bytes wherever this runs. A broker's refusal
        # would cost the idempotent producer its sequence, and the loop would rebuild.)
        size = len(record.value or b"") + len(record.key or b"")
        omitted = f"{size} bytes of key and value: too large to copy; read it at dlq.source.*"
        key = record.key[:_KEY_KEPT] if record.key else None
        await send(None, key, [("dlq.omitted", omitted.encode())])
    log.warning("consumer %s: %s@%s sent to DLQ: %s", group, record.topic, record.offset, reason)


def unparseable(exc: Exception) -> str:
    """A dead letter's reason for a record that is no envelope, with what the parser said (a
    version this build does not read, a missing field: `orders dlq list` tells them from
    garbage)."""
    if isinstance(exc, ValidationError):
        said = "; ".join(
            ".".join(map(str, e["loc"])) + ": " + e["msg"] if e["loc"] else e["msg"]
            for e in exc.errors()[:3]
        )
    else:
        said = one_line(exc)
    return f"unparseable: {type(exc).__name__}: {said}"[:300]
