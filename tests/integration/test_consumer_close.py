"""A planned stop of a consumer group member (`ConsumerLoop.close`: `drain` then `leave`, what
`orders deploy --restart` asks of every actor before killing it) leaves the group: the broker
drops the member at once and hands its partitions to the other, where a killed member stays
counted for the 10 s session timeout (and a new member's join waits for it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

import pytest

from adapters.kafka import describe_groups, partitions_of
from consumers import routes
from consumers.loop import ConsumerLoop
from core.settings import Settings
from domain.events import Envelope, Topic

# a topic that holds next to nothing on a test stack (the group reads it from the start)
TOPIC = Topic.dlq(Topic.ORDER_CANCELLED)


class _Nothing:
    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        return None


async def _until(check: Callable[[], object], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def _members(settings: Settings, group: str) -> int:
    """How many members the broker counts in `group` now."""
    (line,) = await describe_groups(settings.kafka_bootstrap, [group])
    return int(line.split(", ")[1].split(" member")[0])


def _assigned(loop: ConsumerLoop) -> set[int]:
    return {tp.partition for tp in loop._assignment()}


async def test_a_closed_member_hands_its_partitions_over_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = set(await partitions_of(settings.kafka_bootstrap, TOPIC))
    assert len(parts) >= 2, f"{TOPIC} needs two partitions for two members: {parts}"
    group = f"test-close-{uuid.uuid4().hex[:8]}"
    monkeypatch.setitem(routes.GROUPS, group, (routes.Route(TOPIC, "nothing"),))
    first = ConsumerLoop(group, _Nothing(), settings)
    second = ConsumerLoop(group, _Nothing(), settings)
    try:
        await _until(
            lambda: (
                _assigned(first)
                and _assigned(second)
                and _assigned(first) | _assigned(second) == parts
            ),
            60,
            "both members to hold partitions",
        )
        assert await _members(settings, group) == 2
        await first.close()
        assert first._task.done() and first._consumer is None
        # the broker dropped the member at once: a killed one stays for the session timeout
        assert await _members(settings, group) == 1
        await _until(lambda: _assigned(second) == parts, 30, "the partitions to move")
        assert second.health()["status"] == "up"
    finally:
        for loop in (first, second):
            await loop.close()
