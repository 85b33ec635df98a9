"""A Kafka client's stop that outlasts its wait is left to finish, not cancelled (review of
2026-12-06): aiokafka marks a consumer closed before it leaves its group, so a cancelled stop
never closed the fetcher and connections, and every rebuild of a consumer stuck in a join
leaked them."""

from __future__ import annotations

import asyncio

from adapters.kafka import stop_quietly


class _Slow:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = False

    async def stop(self) -> None:
        await self.release.wait()  # a LeaveGroup to a broker that does not answer
        self.closed = True


class _Failing:
    async def stop(self) -> None:
        raise ConnectionError("broker gone")


async def test_a_slow_stop_finishes_after_the_wait() -> None:
    client = _Slow()
    await asyncio.wait_for(stop_quietly(client, timeout_s=0.05), 1)  # returns after its wait
    assert not client.closed
    client.release.set()
    for _ in range(100):
        if client.closed:
            break
        await asyncio.sleep(0.01)
    assert client.closed


async def test_a_failing_stop_is_swallowed() -> None:
    await stop_quietly(_Failing(), timeout_s=1)
