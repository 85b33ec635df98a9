"""How a consumer group member hosted by a shard calls the shards (consumers.base.Shards)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.base import Shards
from core import registry
from core.settings import Settings
from domain.errors import Unavailable


class _Local:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def reserve_batch(self, items: list[int]) -> str:
        self.calls.append(items)
        return "local"


class _Method:
    def __init__(self, log: list[tuple[str, list[int]]], name: str) -> None:
        self._log = log
        self._name = name

    def remote(self, items: list[int]) -> asyncio.Future[str]:
        self._log.append((self._name, items))
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.set_result(f"remote {self._name}")
        return done


class _Handle:
    def __init__(self, log: list[tuple[str, list[int]]], name: str) -> None:
        self.reserve_batch = _Method(log, name)


def _shards(monkeypatch: pytest.MonkeyPatch, existing: set[str]) -> tuple[Shards, _Local, Any]:
    log: list[tuple[str, list[int]]] = []
    looked_up: list[str] = []

    def get_actor(name: str, namespace: str) -> _Handle:
        looked_up.append(name)
        if name not in existing:
            raise ValueError(f"Failed to look up actor with name '{name}'")
        return _Handle(log, name)

    monkeypatch.setattr(registry, "get_actor", get_actor)
    local = _Local()
    return Shards(Settings(), registry.inventory_shard, 1, local), local, (log, looked_up)


def test_the_hosting_shard_is_called_in_process_the_others_through_their_actors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shards, local, (log, looked_up) = _shards(monkeypatch, {"inventory-shard-0"})

    async def run() -> list[str]:
        first = await shards.call(0, "reserve_batch", [0, 10])  # looks the handle up
        calls = [shards.call(i, "reserve_batch", [i, 10 + i]) for i in (1, 0)]
        return [first, *await asyncio.gather(*calls)]

    assert asyncio.run(run()) == ["remote inventory-shard-0", "local", "remote inventory-shard-0"]
    assert local.calls == [[1, 11]]  # the very objects, no Ray call for its own part
    assert log == [("inventory-shard-0", [0, 10]), ("inventory-shard-0", [0, 10])]
    assert looked_up == ["inventory-shard-0"]  # the handle is looked up once, then kept


def test_a_shard_that_does_not_exist_yet_is_unavailable_not_poison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumers.transient import is_transient

    shards, _, _ = _shards(monkeypatch, set())
    with pytest.raises(Unavailable, match="inventory-shard-2") as raised:
        asyncio.run(shards.call(2, "reserve_batch", []))  # type: ignore[arg-type]
    assert is_transient(raised.value)  # the loop retries it without limit, never dead-letters


class _Recorder:
    """Stands in for `Shards`: records the calls a handler makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, list[str]]] = []

    def call(self, index: int, method: str, part: list[Any]) -> asyncio.Future[None]:
        self.calls.append((index, method, [e.data["customerId"] for e in part]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _reserved(customer: str | None, cancelled: bool = False) -> tuple[str, Any]:
    from uuid import uuid4

    from domain.events import Topic, new_event

    data = {"customerId": customer} if customer is not None else {}
    if cancelled:
        return Topic.ORDER_CANCELLED, new_event("OrderCancelled", uuid4(), **data)
    return Topic.INVENTORY_RESERVED, new_event("StockReserved", uuid4(), **data)


def test_the_payment_member_makes_one_call_per_shard_and_action() -> None:
    from consumers.payment import PaymentHandler

    shards = _Recorder()
    handler = PaymentHandler(Settings(payment_shards=2), shards)  # type: ignore[arg-type]
    customers = ["c-1", "c-2", "c-3", "c-4"]
    asyncio.run(handler.handle([_reserved(c) for c in customers]))
    by_shard = {i: [c for c in customers if registry.shard_of(c, 2) == i] for i in (0, 1)}
    assert sorted(shards.calls) == [
        (i, "authorize_batch", by_shard[i]) for i in (0, 1) if by_shard[i]
    ]


def test_a_poison_event_stops_the_batch_before_any_shard_is_called() -> None:
    from consumers.base import PoisonMessage
    from consumers.payment import PaymentHandler

    shards = _Recorder()
    handler = PaymentHandler(Settings(payment_shards=2), shards)  # type: ignore[arg-type]
    batch = [_reserved("c-2", cancelled=True), _reserved("c-1"), _reserved(None)]
    with pytest.raises(PoisonMessage, match="no customerId"):
        asyncio.run(handler.handle(batch))  # the refund's part comes first, and is not sent
    assert shards.calls == []
