"""The consumer loop's retries and reports (consumers.loop.ConsumerLoop): a poison retry's wait
does not grow with an outage before it; what follows a handled batch (metrics, the lag report)
never makes it run again or fails the cycle; an idle group's lag is measured again."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, MessageSizeTooLargeError

from consumers import loop as loop_module
from consumers.base import PoisonMessage
from consumers.deadletter import dead_letter
from consumers.loop import ConsumerLoop
from consumers.transient import Poisoned, is_transient
from core.registry import SHIPPING_GROUP
from core.settings import Settings
from domain.events import Envelope

TP = TopicPartition("payment.authorized", 0)


class _Clock:
    """`asyncio` for the loop module, its sleeps recorded instead of waited."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


class _Handler:
    def __init__(self, outage: int) -> None:
        self.outage = outage  # transient failures before the poison shows
        self.calls = 0

    async def handle(self, events: Any) -> None:
        self.calls += 1
        if self.outage >= 0 and self.calls == 1:
            raise KeyError("a bug that shows on this event")
        if self.calls <= 1 + self.outage:
            raise psycopg.OperationalError("the database restarts")
        if self.outage >= 0:
            raise KeyError("a bug that shows on this event")


class _Consumer:
    """Stands in for AIOKafkaConsumer's lag calls and an idle fetch."""

    def __init__(self, position: int | Exception) -> None:
        self._position = position

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        return {}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    async def position(self, tp: TopicPartition) -> int:
        if isinstance(self._position, Exception):
            raise self._position
        return self._position


async def _loop(handler: Any) -> ConsumerLoop:
    loop = ConsumerLoop(SHIPPING_GROUP, handler, Settings())
    loop._task.cancel()  # the tests drive the loop's steps themselves: no broker
    await asyncio.gather(loop._task, return_exceptions=True)
    return loop


def _items() -> list[tuple[str, Envelope]]:
    return [("payment.authorized", Envelope(type="PaymentAuthorized", order_id=uuid.uuid4()))]


async def test_an_outage_before_an_error_s_retry_does_not_stretch_its_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 transient failures (a minute's database outage) between an unexpected error's first
    attempt and the next: its waits stay 0.2 s × attempt (they were 0.2 s × 2^20 × attempt)."""
    clock = _Clock()
    monkeypatch.setattr(loop_module, "asyncio", clock)
    handler = _Handler(outage=20)
    loop = await _loop(handler)
    with pytest.raises(Poisoned):
        await loop._call_with_retries(_items())
    assert max(clock.waits) <= 5.0, clock.waits
    assert handler.calls == 1 + 20 + Settings().consumer_max_retries
    poison_waits = [clock.waits[0], *clock.waits[21:]]
    assert poison_waits == pytest.approx([0.2, 0.4, 0.6]), clock.waits


async def test_a_handled_batch_is_not_run_again_when_its_metrics_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = _Handler(outage=-1)  # never fails
    loop = await _loop(handler)

    def broken(*_: Any) -> None:
        raise TypeError("can't subtract offset-naive and offset-aware datetimes")

    monkeypatch.setattr(loop._metrics, "stage_latency", broken)
    await loop._call_with_retries(_items())
    assert handler.calls == 1


def test_an_occurred_at_without_an_offset_is_a_bad_message() -> None:
    raw = Envelope(type="OrderCreated", order_id=uuid.uuid4()).to_json()
    naive = raw.replace(b'Z"', b'"')
    assert naive != raw
    with pytest.raises(ValueError):
        Envelope.from_json(naive)


async def test_a_partition_moved_away_keeps_the_last_lag_and_the_cycle() -> None:
    loop = await _loop(_Handler(outage=-1))
    loop._consumer = _Consumer(IllegalStateError("No current position for partition"))
    loop._lag = 4
    await loop._update_lag()  # raised before, tearing the consumer down after a handled batch
    assert loop.health()["lag"] == 4


async def test_an_idle_group_reports_its_lag_again() -> None:
    """A burst's last busy cycle measured a lag; the group then went idle and kept reporting
    it for as long as it stayed idle."""
    loop = await _loop(_Handler(outage=-1))
    loop._consumer = _Consumer(10)
    loop._lag = 250
    assert await loop._poll_once() == 0
    assert loop.health()["lag"] == 0


class _Batch(_Consumer):
    """One fetch of `records`, then nothing."""

    def __init__(self, records: list[Any]) -> None:
        super().__init__(0)
        self._records = records

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        out, self._records = self._records, []
        return {TP: out} if out else {}


class _Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        self.sent.append(value)


class _RefusesOne:
    def __init__(self, poison: uuid.UUID) -> None:
        self.poison = poison

    async def handle(self, events: list[tuple[str, Envelope]]) -> None:
        if any(e.order_id == self.poison for _, e in events):
            raise PoisonMessage("order unknown")


async def test_a_dead_lettered_event_is_not_counted_as_handled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_module, "asyncio", _Clock())  # the poison retries' waits
    envelopes = [Envelope(type="PaymentAuthorized", order_id=uuid.uuid4()) for _ in range(3)]
    records = [
        ConsumerRecord(TP.topic, 0, n, 0, 0, None, e.to_json(), None, 0, 0, ())
        for n, e in enumerate(envelopes)
    ]
    loop = await _loop(_RefusesOne(envelopes[1].order_id))
    loop._consumer = _Batch(records)
    loop._producer = producer = _Producer()
    assert await loop._poll_once() == 3
    assert len(producer.sent) == 1
    health = loop.health()
    assert (health["handled"], health["deadLettered"]) == (2, 1)  # it was (3, 1)


async def test_a_poison_message_is_dead_lettered_without_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(loop_module, "asyncio", clock)
    handler = _RefusesOne(uuid.uuid4())
    handler.poison = (items := _items())[0][1].order_id
    loop = await _loop(handler)
    with pytest.raises(Poisoned, match="poison: PoisonMessage"):
        await loop._call_with_retries(items)
    assert clock.waits == []  # each was retried 3 times, 1.2 s of waits


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.OperationalError("connection refused"), True),  # no SQLSTATE: the client's
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.SerializationFailure(), True),
        (psycopg.errors.LockNotAvailable(), True),
        (psycopg.errors.TooManyConnections(), True),
        (psycopg.errors.ProgramLimitExceeded(), False),  # "index row size exceeds maximum"
        (psycopg.errors.ObjectNotInPrerequisiteState(), False),
        (psycopg.errors.UniqueViolation(), False),
    ],
)
def test_only_the_databases_infrastructure_errors_are_retried_without_limit(
    error: psycopg.Error, transient: bool
) -> None:
    """An OperationalError of class 54 or 55000 comes back on every retry: retried without
    limit, an event whose text made one held its stage for good."""
    assert is_transient(error) is transient


class _TooLong:
    async def handle(self, events: Any) -> None:
        raise psycopg.errors.ProgramLimitExceeded("index row size 8200 exceeds btree maximum")


async def test_an_event_the_database_refuses_every_time_becomes_poison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_module, "asyncio", _Clock())
    loop = await _loop(_TooLong())
    with pytest.raises(Poisoned, match="handler_error: ProgramLimitExceeded"):
        await loop._call_with_retries(_items())


class _SizeLimited(_Producer):
    """A producer whose requests hold at most `limit` bytes of value (max_request_size)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.headers: list[dict[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, **kw: Any) -> None:
        if value is not None and len(value) > self.limit:
            raise MessageSizeTooLargeError("The message is too large")
        self.sent.append(value)
        self.headers.append(dict(kw["headers"]))


async def test_a_record_too_large_to_copy_is_dead_lettered_without_its_value() -> None:
    """The member rebuilt and fetched the record again for ever (its group stopped)."""
    record = ConsumerRecord(TP.topic, 0, 7, 0, 0, b"k", b"{" * 100, None, 100, 1, ())
    producer = _SizeLimited(50)
    await dead_letter(producer, "payment", record, "unparseable: ValueError")
    assert producer.sent == [None]
    (headers,) = producer.headers
    assert headers["dlq.source.offset"] == b"7"
    assert headers["dlq.omitted"].startswith(b"101 bytes of key and value: too large to copy")
