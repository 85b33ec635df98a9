"""A planned stop of a consumer group member (`ConsumerLoop.close`): the batch in flight is
finished, not cut off, its offsets are committed, and the consumer is stopped (aiokafka's stop
leaves the group); a cycle that does not end within the bound is cancelled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from consumers.loop import ConsumerLoop
from core.registry import SHIPPING_GROUP
from core.settings import Settings
from domain.events import Envelope, Topic

TP = TopicPartition(Topic.PAYMENT_AUTHORIZED, 0)


def _record(offset: int) -> ConsumerRecord[Any, Any]:
    value = Envelope(type="PaymentAuthorized", order_id=uuid.uuid4()).to_json()
    return ConsumerRecord(TP.topic, 0, offset, 0, 0, None, value, None, 0, len(value), [])


class _Consumer:
    """One batch of two records, then nothing; records commits and its stop."""

    def __init__(self) -> None:
        self.batches = [[_record(7), _record(8)]]
        self.committed: list[dict[TopicPartition, int]] = []
        self.stopped = False

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if self.batches:
            return {TP: self.batches.pop(0)}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 9

    async def position(self, tp: TopicPartition) -> int:
        return 9

    async def stop(self) -> None:
        self.stopped = True


class _Handler:
    def __init__(self, release: asyncio.Event) -> None:
        self.started = asyncio.Event()
        self.release = release
        self.done = 0
        self.cancelled = False

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.done += len(events)


async def _running(handler: _Handler) -> tuple[ConsumerLoop, _Consumer]:
    loop = ConsumerLoop(SHIPPING_GROUP, handler, Settings())
    consumer = _Consumer()
    loop._consumer = consumer  # set before its task first runs: no broker
    await asyncio.wait_for(handler.started.wait(), 5)
    return loop, consumer


async def test_close_finishes_the_batch_in_flight_commits_it_and_stops() -> None:
    release = asyncio.Event()
    handler = _Handler(release)
    loop, consumer = await _running(handler)
    closing = asyncio.create_task(loop.close(timeout_s=5))
    await asyncio.sleep(0.05)
    assert not closing.done()  # it waits for the batch, it does not cut it off
    release.set()
    await asyncio.wait_for(closing, 5)
    assert handler.done == 2 and not handler.cancelled
    assert consumer.committed and consumer.committed[-1] == {TP: 9}
    assert consumer.stopped and loop._consumer is None and loop._task.done()


async def test_a_cycle_that_outlasts_the_bound_is_cancelled_and_not_committed() -> None:
    handler = _Handler(asyncio.Event())  # never released
    loop, consumer = await _running(handler)
    await asyncio.wait_for(loop.close(timeout_s=0.2), 5)
    assert handler.cancelled and handler.done == 0
    assert all(TP not in c for c in consumer.committed)  # redelivered to the next member
    assert consumer.stopped and loop._task.done()


async def test_a_drained_member_stays_in_its_group_until_it_leaves() -> None:
    """Every member drains before any leaves: a leave starts a rebalance, and a last commit of
    a member still draining would then be for partitions moved away."""
    release = asyncio.Event()
    release.set()
    handler = _Handler(release)
    loop, consumer = await _running(handler)
    await asyncio.wait_for(loop.drain(timeout_s=5), 5)
    assert loop._task.done() and consumer.committed[-1] == {TP: 9}
    assert not consumer.stopped and loop._consumer is consumer  # still a member
    await loop.leave()
    assert consumer.stopped and loop._consumer is None


async def test_close_again_after_a_cancelled_cycle_is_quiet() -> None:
    handler = _Handler(asyncio.Event())  # never released: the first close cancels the cycle
    loop, _ = await _running(handler)
    await asyncio.wait_for(loop.close(timeout_s=0.2), 5)
    await asyncio.wait_for(loop.close(timeout_s=0.2), 5)  # no CancelledError out of it


async def test_leave_without_drain_does_not_rebuild_a_member() -> None:
    """A deploy whose `quiesce` did not reach the actor (restarted meanwhile) still calls
    `leave`: the loop must end, not see its consumer stopped and start a new member."""
    handler = _Handler(asyncio.Event())
    loop, consumer = await _running(handler)
    await asyncio.wait_for(loop.leave(), 5)
    assert loop._task.done() and not handler.done  # ended: nothing left to rebuild a member
    assert consumer.stopped and loop._consumer is None
