"""`task_stacks` (actors/base.py) names each asyncio task with the chain of awaits it is in."""

from __future__ import annotations

import asyncio

from actors.base import task_stacks


async def _innermost(gate: asyncio.Event) -> None:
    await gate.wait()


async def _middle(gate: asyncio.Event) -> None:
    await _innermost(gate)


async def _stacks_while_a_task_waits() -> list[str]:
    gate = asyncio.Event()
    task = asyncio.create_task(_middle(gate), name="waiter")
    await asyncio.sleep(0)  # the task runs until its await
    try:
        return task_stacks()
    finally:
        gate.set()
        await task


def test_a_waiting_task_shows_each_await_down_to_the_future_it_waits_on() -> None:
    stacks = asyncio.run(_stacks_while_a_task_waits())
    [waiter] = [line for line in stacks if line.startswith("waiter: ")]
    chain = waiter.removeprefix("waiter: ").split(" → ")
    names = [link.split(":")[0] for link in chain]
    assert names[:4] == ["_middle", "_innermost", "Event.wait", "FutureIter"], waiter
    assert any("_stacks_while_a_task_waits:" in line for line in stacks)  # the caller too
