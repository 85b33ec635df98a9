"""The consumer loop's retries and reports (consumers.loop.ConsumerLoop): a poison retry's wait
does not grow with an outage before it; what follows a handled batch (metrics, the lag report)
never makes it run again or fails the cycle; an idle group's lag is measured again."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from consumers import loop as loop_module
from consumers.base import PoisonMessage
from consumers.loop import ConsumerLoop, _Poison
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
            raise PoisonMessage("order unknown")
        if self.calls <= 1 + self.outage:
            raise psycopg.OperationalError("the database restarts")
        if self.outage >= 0:
            raise PoisonMessage("order unknown")


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


async def test_an_outage_before_a_poison_retry_does_not_stretch_its_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 transient failures (a minute's database outage) between the first poison attempt and
    the next: the poison waits stay 0.2 s × attempt (they were 0.2 s × 2^20 × attempt)."""
    clock = _Clock()
    monkeypatch.setattr(loop_module, "asyncio", clock)
    handler = _Handler(outage=20)
    loop = await _loop(handler)
    with pytest.raises(_Poison):
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
