"""The shipping actor's timer batches: a failing step stays reported (`stepError`) until that
order's step works, whatever other batches do meanwhile; an order whose step fails on its own is
split off, so the others of its batch go on, within a bounded number of transactions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from actors.shipping import ShippingActor
from actors.step_queue import StepQueue
from domain import shipping as rules

A, B, C, POISON = (uuid.UUID(int=i) for i in (1, 2, 3, 4))


class _Consumer:
    def health(self) -> dict[str, Any]:
        return {"status": "up"}


def _actor(error: Callable[[dict[uuid.UUID, str]], Exception | None]) -> Any:
    """The actor's class without Ray, its `_advance` (one transaction) raising `error(steps)`
    when that is not None; `advanced` lists the batches that went through, `calls` all."""
    remote: Any = ShippingActor  # Ray's actor class: the plain class is its metadata's
    actor: Any = object.__new__(remote.__ray_metadata__.modified_class)
    actor._steps, actor._wake = StepQueue(0.25, 10), asyncio.Event()
    actor._failing, actor._consumer = {}, _Consumer()
    actor.advanced, actor.calls = [], []

    async def advance(steps: dict[uuid.UUID, str]) -> None:
        actor.calls.append(set(steps))
        exc = error(steps)
        if exc is not None:
            raise exc
        actor.advanced.append(set(steps))

    actor._advance = advance
    return actor


def _failing(*steps: str) -> Callable[[dict[uuid.UUID, str]], Exception | None]:
    def error(batch: dict[uuid.UUID, str]) -> Exception | None:
        return ConnectionError("connection refused") if set(steps) & set(batch.values()) else None

    return error


async def test_a_delivered_batch_that_works_does_not_clear_a_failing_shipped_step() -> None:
    actor = _actor(_failing(rules.SHIPPED))
    await actor._advance_or_retry([(1.0, rules.SHIPPED, A)])
    await actor._advance_or_retry([(1.0, rules.DELIVERED, B)])
    health = await actor.health()
    assert health["status"] == "degraded"
    assert health["stepError"] == "SHIPPED: 1 failing, ConnectionError: connection refused"
    assert len(actor._steps) == 1  # the failed step is back in the queue


async def test_a_step_is_cleared_by_a_batch_of_its_own_that_works() -> None:
    actor = _actor(_failing(rules.SHIPPED, rules.DELIVERED))
    await actor._advance_or_retry([(1.0, rules.SHIPPED, A)])
    await actor._advance_or_retry([(1.0, rules.DELIVERED, B)])
    assert (await actor.health())["stepError"] == (
        "DELIVERED: 1 failing, ConnectionError: connection refused; "
        "SHIPPED: 1 failing, ConnectionError: connection refused"
    )
    actor._advance = _actor(_failing())._advance
    await actor._advance_or_retry([(2.0, rules.SHIPPED, A)])
    assert (await actor.health())["stepError"] == (
        "DELIVERED: 1 failing, ConnectionError: connection refused"
    )
    await actor._advance_or_retry([(2.0, rules.DELIVERED, B)])
    health = await actor.health()
    assert health["status"] == "up" and "stepError" not in health


async def test_an_order_that_fails_on_its_own_is_split_off_and_the_others_go_on() -> None:
    def poison(batch: dict[uuid.UUID, str]) -> Exception | None:
        return ValueError("bad row") if POISON in batch else None

    actor = _actor(poison)
    await actor._advance_or_retry([(1.0, rules.SHIPPED, oid) for oid in (A, POISON, B, C)])
    assert set().union(*actor.advanced) == {A, B, C}
    ships, _ = actor._steps.take(now=float("inf"))
    assert [(step, oid) for _, step, oid in ships] == [(rules.SHIPPED, POISON)]
    assert (await actor.health())["stepError"] == "SHIPPED: 1 failing, ValueError: bad row"
    # a batch of other orders that works meanwhile does not hide it
    await actor._advance_or_retry([(2.0, rules.SHIPPED, C)])
    assert (await actor.health())["stepError"] == "SHIPPED: 1 failing, ValueError: bad row"


async def test_an_error_every_order_hits_costs_a_bounded_number_of_transactions() -> None:
    actor = _actor(lambda batch: PermissionError("permission denied for table shipments"))
    batch = [(1.0, rules.SHIPPED, uuid.UUID(int=100 + i)) for i in range(100)]
    await actor._advance_or_retry(batch)
    assert len(actor.calls) <= 2 * (100).bit_length() + 1  # not the 199 of a full split
    assert len(actor._steps) == 100 and not actor.advanced
    assert (await actor.health())["stepError"].startswith("SHIPPED: 100 failing, PermissionError")


async def test_an_outage_fails_the_whole_batch_without_splitting_it() -> None:
    actor = _actor(_failing(rules.SHIPPED))
    batch = [(1.0, rules.SHIPPED, oid) for oid in (A, B, C)]
    await actor._advance_or_retry(batch)
    assert actor.calls == [{A, B, C}] and not actor.advanced
    assert len(actor._steps) == 3
