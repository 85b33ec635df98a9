"""The inventory consumer: reserve all-or-nothing across shards (fixed shard order, compensate
on failure), cap open holds per customer, release on decline/cancel/failure, commit on ship."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from adapters.pg import apply_transitions, claim_events, insert_outbox, lock_orders, open_pool
from adapters.status import StatusPublisher
from consumers.base import ActorLookup, PoisonMessage, by_topic, items_of, shipment_status
from core import registry
from core.settings import Settings
from domain.events import Envelope, Topic, new_event
from domain.model import OrderStatus

OUT_OF_STOCK = "out of stock"
TOO_MANY_HOLDS = "too many open reservations: pay or cancel earlier orders first"


class InventoryHandler(ActorLookup):
    """Reserve all-or-nothing across shards; release on decline/cancel/failure; commit on ship."""

    topics = (
        Topic.ORDER_CREATED,
        Topic.PAYMENT_DECLINED,
        Topic.ORDER_CANCELLED,
        Topic.SHIPPING_UPDATED,
    )
    consumer = "inventory"
    events_per_order = 4  # created + shipping CREATED, SHIPPED, DELIVERED
    # commits on SHIPPED, releases on FAILED: the other shipment steps are not its business
    ignored = {Topic.SHIPPING_UPDATED: shipment_status("CREATED", "DELIVERED")}

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
        grouped = by_topic(events)
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

    async def _over_hold_cap(self, conn: Any, events: list[Envelope]) -> set[uuid.UUID]:
        """Orders whose principal already holds the maximum of unshipped reservations."""
        principals = {e.order_id: str(e.data.get("principal", "")) for e in events}
        cur = await conn.execute(
            "SELECT principal, count(DISTINCT order_id) AS n FROM reservations "
            "WHERE state = 'HELD' AND principal = ANY(%s) GROUP BY principal",
            (sorted(set(principals.values())),),
        )
        holds = {r["principal"]: int(r["n"]) for r in await cur.fetchall()}
        cap, capped = self.settings.max_open_holds_per_customer, set()
        for e in events:
            who = principals[e.order_id]
            if holds.get(who, 0) >= cap:
                capped.add(e.order_id)
            else:
                holds[who] = holds.get(who, 0) + 1
        return capped

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
            capped = await self._over_hold_cap(conn, events)
        n = self.settings.inventory_shards
        per_shard: dict[int, list[tuple[uuid.UUID, str, str, list[tuple[str, int]]]]] = defaultdict(
            list
        )
        for e in events:
            if e.order_id in capped:
                continue
            split: dict[int, list[tuple[str, int]]] = defaultdict(list)
            for sku, qty in items_of(e):
                split[registry.shard_of(sku, n)].append((sku, qty))
            for index in sorted(split):  # fixed order across shards
                per_shard[index].append(
                    (
                        e.order_id,
                        str(e.data.get("customerId", "")),
                        str(e.data.get("principal", "")),
                        split[index],
                    )
                )
        shard_ids = sorted(per_shard)
        answers = await asyncio.gather(
            *(self._shard(i).reserve_batch.remote(per_shard[i]) for i in shard_ids)
        )
        ok: dict[uuid.UUID, bool] = {e.order_id: e.order_id not in capped for e in events}
        for i, results in zip(shard_ids, answers, strict=True):
            for (order_id, _, _, _), good in zip(per_shard[i], results, strict=True):
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
                    reason = TOO_MANY_HOLDS if e.order_id in capped else OUT_OF_STOCK
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
