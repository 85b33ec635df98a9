"""What the payment group does with a batch: one call per owning shard actor.

Each handler is idempotent: a redelivered event changes nothing (dedupe rows in the same
Postgres transaction as the effect, or state transitions that only happen once).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from consumers import routes
from consumers.base import ActorLookup, Handler, PoisonMessage
from consumers.inventory import InventoryHandler
from core import registry
from core.settings import Settings
from domain.events import Envelope

# the payment shard's method of each action of the payment group's routes
_PAYMENT_METHODS = {
    "authorize": "authorize_batch",
    "refund": "refund_batch",
    "capture": "capture_batch",
}


class PaymentHandler(ActorLookup):
    """Per action, the batch split by customer shard: one call per payment shard."""

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        calls: list[Any] = []
        for action, batch in routes.sort("payment", events).items():
            for index, part in self._split(batch).items():
                shard = self.actor(registry.payment_shard(index))
                calls.append(getattr(shard, _PAYMENT_METHODS[action]).remote(part))
        await asyncio.gather(*calls)

    def _split(self, events: list[Envelope]) -> dict[int, list[Envelope]]:
        parts: dict[int, list[Envelope]] = defaultdict(list)
        for e in events:
            customer = e.data.get("customerId")
            if not isinstance(customer, str) or not customer:
                raise PoisonMessage(f"event {e.event_id} has no customerId")
            parts[registry.shard_of(customer, self.settings.payment_shards)].append(e)
        return parts


def handler_for(group: str, settings: Settings) -> Handler:
    """The handler of a group run by a `KafkaBridge` actor (the notification and shipping
    groups run inside their owners, docs/adr/ADR-006)."""
    kinds: dict[str, type[InventoryHandler | PaymentHandler]] = {
        "inventory": InventoryHandler,
        "payment": PaymentHandler,
    }
    return kinds[group](settings)
