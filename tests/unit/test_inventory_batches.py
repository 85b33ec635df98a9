"""The inventory group's member across shards and within one fetch (review of 2026-12-06):
stock the batch's releases give back is there for its new orders, an order another shard
refused takes nothing on the hosting shard, and a release or commit of an order that does not
exist is poison once the rest of the batch is done."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from consumers.base import PoisonMessage
from consumers.inventory import InventoryHandler, _Reserve
from core.settings import Settings
from domain.events import Topic, new_event
from domain.inventory import ReserveRequest


class _Shards:
    def __init__(
        self, index: int, answers: dict[int, list[bool]], unknown: set[uuid.UUID] | None = None
    ) -> None:
        self.index = index
        self.answers = answers
        self.unknown = unknown or set()  # the orders that do not exist
        self.calls: list[tuple[int, str, list[Any]]] = []
        self.looked: list[tuple[int, str]] = []  # (shard, method) asked to find unknown orders

    async def call(self, index: int, method: str, *args: Any) -> Any:
        items = list(args[-1] if method == "reserve_in" else args[0])
        self.calls.append((index, method, items))
        if method == "reserve_in":
            return [True] * len(items)  # this shard has the stock of every order asked
        if method == "reserve_batch":
            return self.answers[index]
        find_unknown = len(args) > 1 and args[1]
        if find_unknown:
            self.looked.append((index, method))
        return 0, [o for o in items if o in self.unknown] if find_unknown else []


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
        return 0, []

    shards.call = call  # type: ignore[method-assign]
    declined = new_event("PaymentDeclined", uuid.uuid4(), reason="card_declined")
    created = new_event("OrderCreated", uuid.uuid4(), items=[{"sku": "a", "qty": 1}])
    asyncio.run(
        handler.handle([(Topic.ORDER_CREATED, created), (Topic.PAYMENT_DECLINED, declined)])
    )
    assert log[:2] == ["release_batch", "reserve"]


def test_a_release_or_commit_of_an_order_that_does_not_exist_is_poison_after_the_rest() -> None:
    """The hosting shard's statement that closes the holds finds the phantom (the other shards
    do not look again); the batch's releases, reserves and commits all run first, each once, so
    the loop's one-by-one rerun of the good events changes nothing."""
    log: list[str] = []
    declined, shipped = uuid.uuid4(), uuid.uuid4()
    phantom = new_event("OrderCancelled", uuid.uuid4(), reason="x")
    shards = _Shards(1, {}, unknown={phantom.order_id})
    handler = InventoryHandler(Settings(inventory_shards=2), _Uow(log), shards)  # type: ignore[arg-type]
    batch = [
        (Topic.PAYMENT_DECLINED, new_event("PaymentDeclined", declined, reason="card_declined")),
        (Topic.ORDER_CANCELLED, phantom),
        (Topic.SHIPPING_UPDATED, new_event("ShippingUpdated", shipped, shipmentStatus="SHIPPED")),
        (Topic.ORDER_CREATED, new_event("OrderCreated", uuid.uuid4(), items=[])),
    ]
    reason = f"order {phantom.order_id} of OrderCancelled {phantom.event_id} does not exist"
    with pytest.raises(PoisonMessage, match=reason):
        asyncio.run(handler.handle(batch))
    assert log == ["reserve"]
    assert sorted((i, m, items) for i, m, items in shards.calls) == [
        (0, "commit_batch", [shipped]),
        (0, "release_batch", [declined, phantom.order_id]),
        (1, "commit_batch", [shipped]),
        (1, "release_batch", [declined, phantom.order_id]),
    ]
    assert shards.looked == [(1, "release_batch"), (1, "commit_batch")]


def test_a_batch_whose_orders_all_exist_is_not_poison() -> None:
    shards = _Shards(0, {}, unknown=set())
    handler = InventoryHandler(Settings(inventory_shards=1), _Uow([]), shards)  # type: ignore[arg-type]
    cancelled = new_event("OrderCancelled", uuid.uuid4(), reason="x")
    asyncio.run(handler.handle([(Topic.ORDER_CANCELLED, cancelled)]))
    assert shards.looked == [(0, "release_batch")]
