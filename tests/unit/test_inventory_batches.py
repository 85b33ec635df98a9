"""The inventory group's member across shards and within one fetch (review of 2026-12-06):
stock the batch's releases give back is there for its new orders, and an order another shard
refused takes nothing on the hosting shard."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from consumers.inventory import InventoryHandler, _Reserve
from core.settings import Settings
from domain.events import Topic, new_event
from domain.inventory import ReserveRequest


class _Shards:
    def __init__(self, index: int, answers: dict[int, list[bool]]) -> None:
        self.index = index
        self.answers = answers
        self.calls: list[tuple[int, str, list[Any]]] = []

    async def call(self, index: int, method: str, *args: Any) -> Any:
        items = list(args[-1])
        self.calls.append((index, method, items))
        if method == "reserve_in":
            return [True] * len(items)  # this shard has the stock of every order asked
        if method == "reserve_batch":
            return self.answers[index]
        return None


def _req(order: uuid.UUID, sku: str) -> ReserveRequest:
    return ReserveRequest(order, "c-1", "p-1", ((sku, 1),))  # type: ignore[arg-type]


def test_an_order_another_shard_refused_takes_nothing_here() -> None:
    """O1 {a, b} and O2 {a}, `a` on the hosting shard with one unit, `b` elsewhere with none:
    O1 held the last `a` (given back after the commit) and O2 was REJECTED beside free stock."""
    o1, o2 = uuid.uuid4(), uuid.uuid4()
    shards = _Shards(0, {1: [False]})
    handler = InventoryHandler(Settings(inventory_shards=2), None, shards)  # type: ignore[arg-type]
    per_shard = {0: [_req(o1, "a"), _req(o2, "a")], 1: [_req(o1, "b")]}
    answers = asyncio.run(handler.reserve(None, per_shard))  # type: ignore[arg-type]
    asked_here = [r.order_id for i, m, items in shards.calls if m == "reserve_in" for r in items]
    assert asked_here == [o2]
    assert answers == {1: [False], 0: [False, True]}


class _Uow:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def run(self, stage: _Reserve, events: Any) -> tuple[_Reserve, list[Any]]:
        self.log.append("reserve")
        return stage, []


def test_a_batchs_releases_come_before_its_reserves() -> None:
    """A decline giving back the last unit, and a new order for it, in one fetch: the order
    was refused, then the unit freed."""
    log: list[str] = []
    shards = _Shards(0, {})
    handler = InventoryHandler(Settings(inventory_shards=1), _Uow(log), shards)  # type: ignore[arg-type]

    async def call(index: int, method: str, *args: Any) -> Any:
        log.append(method)
        return None

    shards.call = call  # type: ignore[method-assign]
    declined = new_event("PaymentDeclined", uuid.uuid4(), reason="card_declined")
    created = new_event("OrderCreated", uuid.uuid4(), items=[{"sku": "a", "qty": 1}])
    asyncio.run(
        handler.handle([(Topic.ORDER_CREATED, created), (Topic.PAYMENT_DECLINED, declined)])
    )
    assert log[:2] == ["release_batch", "reserve"]
