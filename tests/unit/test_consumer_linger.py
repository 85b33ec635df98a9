"""When a consumer group waits for more records (consumers.loop.ConsumerLoop._fetch): a group on
an order's way to SHIPPED never does; a lingering group (notification) only under continuous
load and with a small batch, and never when it was idle."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from consumers.base import Handler
from consumers.loop import ConsumerLoop
from core.registry import NOTIFICATION_GROUP, SHIPPING_GROUP
from core.settings import Settings

TP = TopicPartition("payment.authorized", 0)


def _records(first: int, n: int) -> list[ConsumerRecord[Any, Any]]:
    return [
        ConsumerRecord(TP.topic, 0, o, 0, 0, None, b"{}", None, 0, 2, ())
        for o in range(first, first + n)
    ]


class _Fetcher:
    """Stands in for AIOKafkaConsumer.getmany: each call returns the next queued batch."""

    def __init__(self, *batches: int) -> None:
        self._batches = list(batches)
        self._next = 0
        self.calls: list[int] = []  # timeout_ms of each call

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if max_records < 1:  # as aiokafka does
            raise ValueError("max_records must be a positive Integer")
        self.calls.append(timeout_ms)
        n = self._batches.pop(0) if self._batches else 0
        out = _records(self._next, min(n, max_records))
        self._next += len(out)
        return {TP: out} if out else {}

    def assignment(self) -> set[TopicPartition]:
        return set()  # the lag report of an idle cycle: no partition


class _Idle:
    async def handle(self, events: Any) -> None:
        raise AssertionError("no cycle is handled in these tests")


async def _loop(fetcher: _Fetcher, linger_ms: int) -> ConsumerLoop:
    handler: Handler = _Idle()
    group = NOTIFICATION_GROUP if linger_ms else SHIPPING_GROUP
    loop = ConsumerLoop(group, handler, Settings(), linger_ms)
    loop._task.cancel()  # the test drives `_fetch` itself: no broker
    await asyncio.gather(loop._task, return_exceptions=True)
    loop._consumer = fetcher
    return loop


async def test_a_group_on_the_way_to_shipped_never_waits_for_more() -> None:
    fetcher = _Fetcher(5, 3, 7)
    loop = await _loop(fetcher, linger_ms=0)
    sizes = [len(await loop._fetch()) for _ in range(3)]
    assert sizes == [5, 3, 7]  # busy and small, still one fetch per cycle
    assert fetcher.calls == [200, 200, 200]


async def test_a_lingering_group_waits_under_load_and_takes_what_came() -> None:
    fetcher = _Fetcher(5, 3, 4)
    loop = await _loop(fetcher, linger_ms=30)
    assert len(await loop._fetch()) == 5  # the first batch after idle: no wait
    started = asyncio.get_running_loop().time()
    assert len(await loop._fetch()) == 7  # busy, small: lingered, then took the next batch
    assert asyncio.get_running_loop().time() - started >= 0.03
    assert fetcher.calls == [200, 200, 0]


async def test_a_lingering_group_never_waits_after_an_idle_fetch_or_with_a_big_batch() -> None:
    fetcher = _Fetcher(0, 5, 64, 1)
    loop = await _loop(fetcher, linger_ms=30)
    assert len(await loop._fetch()) == 0
    assert len(await loop._fetch()) == 5  # idle before: at once
    assert len(await loop._fetch()) == 64  # busy, but the batch is big enough
    assert fetcher.calls == [200, 200, 200]


async def test_a_full_batch_below_the_small_batch_size_goes_on_at_once() -> None:
    """With `CONSUMER_BATCH_MAX` under 64 a busy lingering group's full batch asked aiokafka
    for 0 more records, which raises: the group rebuilt its consumer for ever."""
    fetcher = _Fetcher(5, 10, 3)
    loop = await _loop(fetcher, linger_ms=30)
    loop._settings = Settings(consumer_batch_max=10)
    assert len(await loop._fetch()) == 5
    assert len(await loop._fetch()) == 10  # busy, but full: no wait, no second fetch
    assert fetcher.calls == [200, 200]


async def test_an_idle_cycle_clears_the_last_error_only_once_the_member_is_settled() -> None:
    """After a rebuild (`lastError` set) an idle group must not stay `degraded` for ever; a
    member still in a group join has not recovered yet (consumers/membership.py)."""
    loop = await _loop(_Fetcher(0, 0), linger_ms=0)
    loop._last_error = "TimeoutError: group join not completed in 60s"
    await loop._membership.on_partitions_revoked(set())  # a join began and has not ended
    assert await loop._poll_once() == 0
    assert loop.health()["lastError"] is not None and loop.health()["joiningS"] >= 0
    await loop._membership.on_partitions_assigned({TP})
    assert await loop._poll_once() == 0
    assert loop.health()["lastError"] is None
