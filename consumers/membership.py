"""A consumer's group membership: whether it is in the middle of a group join, and for how long
(docs/reliability.md, "A stage that stalls without failing").

aiokafka calls the listener when a join begins (the partitions it held are revoked) and when it
ends (the new assignment arrives). A join normally ends within seconds (a member's session and
rebalance timeouts are aiokafka's 10 s; 7–22 s measured here after killing members). A member
whose join has not ended for `JOIN_LIMIT_S` fetches nothing and may commit nothing, so nothing
else notices it: the loop then rebuilds its consumer, which joins again as a new member. The
consumer's calls that wait for a join to end (`start`, `getmany`) are bounded the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

T = TypeVar("T")
JOIN_LIMIT_S = 60.0
JOIN_DEGRADED_S = 30.0  # `/ready` shows the member as degraded past this


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's base is untyped
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._joining_since: float | None = None
        self._joins = 0  # joins completed (Commits waits for the next after a refusal)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._joining_since is None:
            self._joining_since = self._clock()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._joining_since = None
        self._joins += 1

    def joins(self) -> int:
        """How many joins of the member have completed (its consumer rebuilt or not)."""
        return self._joins

    def rebuilt(self) -> None:
        """The member's consumer was rebuilt: it is in no join yet (it starts a new one)."""
        self._joining_since = None

    def joining_s(self) -> float:
        """Seconds since the current join began; 0 when the member is not joining."""
        since = self._joining_since
        return 0.0 if since is None else self._clock() - since

    def check(self, limit_s: float = JOIN_LIMIT_S) -> None:
        """Raise `TimeoutError` once the current join has lasted `limit_s`."""
        if (joining := self.joining_s()) >= limit_s:
            raise TimeoutError(f"group join not completed in {joining:.0f}s")

    async def bounded(self, step: Awaitable[T], what: str, limit_s: float = JOIN_LIMIT_S) -> T:
        """Await a call of the consumer that waits while a group join is in progress, without
        a bound of its own: `start` waits for the first assignment, and `getmany` ignores its
        timeout during a rebalance (aiokafka 0.14). Raise `TimeoutError` after `limit_s`."""
        try:
            async with asyncio.timeout(limit_s):  # no task of its own: cheap on every fetch
                return await step
        except TimeoutError:
            raise TimeoutError(
                f"group join not completed in {limit_s:.0f}s ({what} waited for it)"
            ) from None


async def lag_of(consumer: AIOKafkaConsumer, position_wait_s: float) -> int:
    """Messages behind the log's end over `consumer`'s assigned partitions (a partition moved
    away meanwhile makes aiokafka raise: the caller keeps its last figure)."""
    lag = 0
    for tp in consumer.assignment():
        if (high := consumer.highwater(tp)) is None:
            continue
        try:  # a partition without a valid position (after a rebalance) waits for one
            position = await asyncio.wait_for(consumer.position(tp), position_wait_s)
        except TimeoutError:
            continue  # its lag counts again once the fetcher has a position
        lag += max(0, high - position)
    return lag
