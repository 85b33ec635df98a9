"""A consumer's group membership (consumers.membership.Membership): a join that never ends makes
the loop rebuild its consumer instead of fetching nothing for ever."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from consumers.membership import JOIN_LIMIT_S, Membership

A0 = TopicPartition("a", 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_it_is_a_listener_aiokafka_accepts() -> None:
    assert isinstance(Membership(), ConsumerRebalanceListener)


async def test_a_join_is_timed_from_the_revoke_to_the_assignment() -> None:
    clock = _Clock()
    member = Membership(clock)
    assert member.joining_s() == 0.0
    await member.on_partitions_revoked(set())  # the first join revokes nothing
    clock.now += 4
    await member.on_partitions_revoked({A0})  # a retried join keeps the time it began
    clock.now += 3
    assert member.joining_s() == 7.0
    await member.on_partitions_assigned({A0})
    assert member.joining_s() == 0.0
    member.check()  # not joining: nothing to raise


async def test_a_join_that_does_not_end_raises_at_the_limit() -> None:
    clock = _Clock()
    member = Membership(clock)
    await member.on_partitions_revoked({A0})
    clock.now += JOIN_LIMIT_S - 1
    member.check()  # a slow rebalance, still within the limit
    clock.now += 1
    with pytest.raises(TimeoutError, match=f"group join not completed in {JOIN_LIMIT_S:.0f}s"):
        member.check()


async def test_a_consumer_call_waiting_for_a_join_that_never_ends_raises() -> None:
    """aiokafka's `start` and `getmany` wait for an assignment without a bound."""
    never = asyncio.Event()
    with pytest.raises(TimeoutError, match=r"group join not completed in 0s \(start waited"):
        await Membership().bounded(never.wait(), "start", limit_s=0.05)


async def test_a_call_that_returns_gives_its_result() -> None:
    async def fetch() -> dict[str, int]:
        return {"records": 3}

    assert await Membership().bounded(fetch(), "a fetch", limit_s=5) == {"records": 3}
