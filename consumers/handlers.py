"""What each consumer group does with a batch: one call per shard actor, then done.

Each handler is idempotent: a redelivered event changes nothing (dedupe rows in the same
Postgres transaction as the effect, or state transitions that only happen once).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from core import registry
from core.db import apply_transitions, claim_events, insert_outbox, lock_orders, open_pool
from core.settings import Settings
from core.status import StatusPublisher
from domain.events import Envelope, Topic, new_event
from domain.model import OrderStatus


class PoisonMessage(Exception):
    """An event that can never be handled (goes to the DLQ after bounded retries)."""


class Handler(Protocol):
    topics: tuple[str, ...]

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None: ...

    async def close(self) -> None: ...


def _by_topic(events: Sequence[tuple[str, Envelope]]) -> dict[str, list[Envelope]]:
    grouped: dict[str, list[Envelope]] = defaultdict(list)
    for topic, event in events:
        grouped[topic].append(event)
    return grouped


def _items(event: Envelope) -> list[tuple[str, int]]:
    try:
        return [(str(i["sku"]), int(i["qty"])) for i in event.data["items"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"event {event.event_id} has no valid items") from exc


class _ActorLookup:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, Any] = {}

    def actor(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = registry.get_actor(name, self.settings.ray_namespace)
        return self._cache[name]


class InventoryHandler(_ActorLookup):
    """Reserve all-or-nothing across shards; release on decline/cancel/failure; commit on ship."""

    topics = (
        Topic.ORDER_CREATED,
        Topic.PAYMENT_DECLINED,
        Topic.ORDER_CANCELLED,
        Topic.SHIPPING_UPDATED,
    )
    consumer = "inventory"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pool: Any = None
        self._status = StatusPublisher(settings.redis_url)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self._status.close()

    def _shard(self, index: int) -> Any:
        return self.actor(registry.inventory_shard(index))

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        if self._pool is None:
            self._pool = await open_pool(self.settings.database_url, 2, "inventory-consumer")
        grouped = _by_topic(events)
        release = [e.order_id for e in grouped[Topic.PAYMENT_DECLINED]]
        release += [e.order_id for e in grouped[Topic.ORDER_CANCELLED]]
        commit = []
        for e in grouped[Topic.SHIPPING_UPDATED]:
            if e.data.get("shipmentStatus") == "FAILED":
                release.append(e.order_id)
            elif e.data.get("shipmentStatus") == "SHIPPED":
                commit.append(e.order_id)
        if grouped[Topic.ORDER_CREATED]:
            release += await self._reserve(grouped[Topic.ORDER_CREATED])
        await self._broadcast("release_batch", release)
        await self._broadcast("commit_batch", commit)

    async def _broadcast(self, method: str, order_ids: list[uuid.UUID]) -> None:
        if order_ids:
            await asyncio.gather(
                *(
                    getattr(self._shard(i), method).remote(order_ids)
                    for i in range(self.settings.inventory_shards)
                )
            )

    async def _reserve(self, events: list[Envelope]) -> list[uuid.UUID]:
        """Reserve, then record outcomes; returns the orders whose holds must be released."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id FROM processed_events WHERE consumer = %s AND event_id = ANY(%s)",
                (self.consumer, [e.event_id for e in events]),
            )
            seen = {r["event_id"] for r in await cur.fetchall()}
            events = [e for e in events if e.event_id not in seen]
            cur = await conn.execute(
                "SELECT id FROM orders WHERE id = ANY(%s)", ([e.order_id for e in events],)
            )
            known = {r["id"] for r in await cur.fetchall()}
        unknown = [e for e in events if e.order_id not in known]
        if unknown:  # checked before reserving, so nothing is held for a phantom order
            raise PoisonMessage(f"order {unknown[0].order_id} does not exist")
        n = self.settings.inventory_shards
        per_shard: dict[int, list[tuple[uuid.UUID, str, list[tuple[str, int]]]]] = defaultdict(list)
        for e in events:
            split: dict[int, list[tuple[str, int]]] = defaultdict(list)
            for sku, qty in _items(e):
                split[registry.shard_of(sku, n)].append((sku, qty))
            for index in sorted(split):  # fixed order across shards
                per_shard[index].append(
                    (e.order_id, str(e.data.get("customerId", "")), split[index])
                )
        shard_ids = sorted(per_shard)
        answers = await asyncio.gather(
            *(self._shard(i).reserve_batch.remote(per_shard[i]) for i in shard_ids)
        )
        ok: dict[uuid.UUID, bool] = {e.order_id: True for e in events}
        for i, results in zip(shard_ids, answers, strict=True):
            for (order_id, _, _), good in zip(per_shard[i], results, strict=True):
                ok[order_id] = ok[order_id] and good
        to_release = [oid for oid, good in ok.items() if not good]
        async with self._pool.connection() as conn:
            await claim_events(conn, self.consumer, [e.event_id for e in events])
            locked = await lock_orders(conn, [e.order_id for e in events])
            changes: list[tuple[uuid.UUID, OrderStatus, str, dict[str, Any] | None]] = []
            outbox = []
            for e in events:
                data = {k: e.data.get(k) for k in ("customerId", "items", "total", "paymentMethod")}
                if ok[e.order_id]:
                    changes.append((e.order_id, OrderStatus.RESERVED, "StockReserved", None))
                    outbox.append(new_event("StockReserved", e.order_id, **data))
                else:
                    reason = "out of stock"
                    changes.append(
                        (e.order_id, OrderStatus.REJECTED, "StockRejected", {"reason": reason})
                    )
                    outbox.append(new_event("StockRejected", e.order_id, reason=reason, **data))
            done = await apply_transitions(conn, locked, changes)
            applied = {t.order_id for t in done if t.applied}
            await insert_outbox(conn, [ev for ev in outbox if ev.order_id in applied])
        # reserved for an order that was cancelled meanwhile: give the stock back
        to_release += [oid for oid, good in ok.items() if good and oid not in applied]
        await self._status.publish(done)
        return to_release


class PaymentHandler(_ActorLookup):
    topics = (Topic.INVENTORY_RESERVED, Topic.ORDER_CANCELLED, Topic.SHIPPING_UPDATED)

    async def close(self) -> None:
        return None

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        grouped = _by_topic(events)
        calls: list[Any] = []
        refunds = list(grouped[Topic.ORDER_CANCELLED])
        captures = []
        for e in grouped[Topic.SHIPPING_UPDATED]:
            if e.data.get("shipmentStatus") == "FAILED":
                refunds.append(e)
            elif e.data.get("shipmentStatus") == "DELIVERED":
                captures.append(e)
        for method, batch in (
            ("authorize_batch", grouped[Topic.INVENTORY_RESERVED]),
            ("refund_batch", refunds),
            ("capture_batch", captures),
        ):
            for index, part in self._split(batch).items():
                shard = self.actor(registry.payment_shard(index))
                calls.append(getattr(shard, method).remote(part))
        await asyncio.gather(*calls)

    def _split(self, events: list[Envelope]) -> dict[int, list[Envelope]]:
        parts: dict[int, list[Envelope]] = defaultdict(list)
        for e in events:
            customer = e.data.get("customerId")
            if not isinstance(customer, str) or not customer:
                raise PoisonMessage(f"event {e.event_id} has no customerId")
            parts[registry.shard_of(customer, self.settings.payment_shards)].append(e)
        return parts


class ShippingHandler(_ActorLookup):
    topics = (Topic.PAYMENT_AUTHORIZED,)

    async def close(self) -> None:
        return None

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        await self.actor(registry.SHIPPING).create_batch.remote([e for _, e in events])


class NotificationHandler(_ActorLookup):
    topics = (
        Topic.INVENTORY_RESERVED,
        Topic.INVENTORY_REJECTED,
        Topic.PAYMENT_AUTHORIZED,
        Topic.PAYMENT_DECLINED,
        Topic.SHIPPING_UPDATED,
        Topic.ORDER_CANCELLED,
    )

    async def close(self) -> None:
        return None

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        await self.actor(registry.NOTIFICATION).notify_batch.remote([e for _, e in events])


HANDLERS: dict[
    str, type[InventoryHandler | PaymentHandler | ShippingHandler | NotificationHandler]
] = {
    "inventory": InventoryHandler,
    "payment": PaymentHandler,
    "shipping": ShippingHandler,
    "notification": NotificationHandler,
}
