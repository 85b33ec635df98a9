"""What each consumer group does with a batch: one call per shard actor, then done.

Each handler is idempotent: a redelivered event changes nothing (dedupe rows in the same
Postgres transaction as the effect, or state transitions that only happen once).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from consumers.base import ActorLookup, PoisonMessage, by_topic, shipment_status
from consumers.inventory import InventoryHandler
from core import registry
from domain.events import Envelope, Topic


class PaymentHandler(ActorLookup):
    topics = (Topic.INVENTORY_RESERVED, Topic.ORDER_CANCELLED, Topic.SHIPPING_UPDATED)
    events_per_order = 4  # reserved + shipping CREATED, SHIPPED, DELIVERED
    # captures on DELIVERED, refunds on FAILED: the other shipment steps are not its business
    ignored = {Topic.SHIPPING_UPDATED: shipment_status("CREATED", "SHIPPED")}

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        grouped = by_topic(events)
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


class ShippingHandler(ActorLookup):
    topics = (Topic.PAYMENT_AUTHORIZED,)
    events_per_order = 1
    ignored: dict[str, tuple[bytes, ...]] = {}

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        await self.actor(registry.SHIPPING).create_batch.remote([e for _, e in events])


HANDLERS: dict[str, type[InventoryHandler | PaymentHandler | ShippingHandler]] = {
    "inventory": InventoryHandler,
    "payment": PaymentHandler,
    "shipping": ShippingHandler,
}  # the notification group runs inside the notification actor (actors/notification.py)
