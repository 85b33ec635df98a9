"""The shipping actor's `stepError`: a failing step stays reported until a batch of that same
step works, whatever the other step's batches do in the same timer pass."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from actors.shipping import ShippingActor
from actors.step_queue import StepQueue
from domain import shipping as rules

A, B = uuid.UUID(int=1), uuid.UUID(int=2)


class _Consumer:
    def health(self) -> dict[str, Any]:
        return {"status": "up"}


def _actor(failing: set[str]) -> Any:
    """The actor's class without Ray, its `_advance` failing for the steps in `failing`."""
    remote: Any = ShippingActor  # Ray's actor class: the plain class is its metadata's
    actor: Any = object.__new__(remote.__ray_metadata__.modified_class)
    actor._steps, actor._wake = StepQueue(0.25, 10), asyncio.Event()
    actor._step_errors, actor._consumer = {}, _Consumer()

    async def advance(steps: dict[uuid.UUID, str]) -> None:
        if failing & set(steps.values()):
            raise OSError("connection refused")

    actor._advance = advance
    return actor


async def test_a_delivered_batch_that_works_does_not_clear_a_failing_shipped_step() -> None:
    actor = _actor(failing={rules.SHIPPED})
    await actor._advance_or_retry([(1.0, rules.SHIPPED, A)])
    await actor._advance_or_retry([(1.0, rules.DELIVERED, B)])
    health = await actor.health()
    assert health["status"] == "degraded"
    assert health["stepError"] == "SHIPPED: OSError: connection refused"
    assert len(actor._steps) == 1  # the failed step is back in the queue


async def test_a_step_is_cleared_by_a_batch_of_its_own_that_works() -> None:
    actor = _actor(failing={rules.SHIPPED, rules.DELIVERED})
    await actor._advance_or_retry([(1.0, rules.SHIPPED, A)])
    await actor._advance_or_retry([(1.0, rules.DELIVERED, B)])
    assert (await actor.health())["stepError"] == (
        "DELIVERED: OSError: connection refused; SHIPPED: OSError: connection refused"
    )
    actor._advance = _actor(failing=set())._advance
    await actor._advance_or_retry([(2.0, rules.SHIPPED, A)])
    assert (await actor.health())["stepError"] == "DELIVERED: OSError: connection refused"
    await actor._advance_or_retry([(2.0, rules.DELIVERED, B)])
    health = await actor.health()
    assert health["status"] == "up" and "stepError" not in health
