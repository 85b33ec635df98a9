"""The payment group: each batch split by action and by customer shard, one call per shard.

Each effect is idempotent: a redelivered event changes nothing (dedupe rows in the same
Postgres transaction as the effect, or state transitions that only happen once).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from consumers import routes
from consumers.base import PoisonMessage, Shards
from core import registry
from core.settings import Settings
from domain.events import Envelope

# the payment shard's method of each action of the payment group's routes
_PAYMENT_METHODS = {
    "authorize": "authorize_batch",
    "refund": "refund_batch",
    "capture": "capture_batch",
}


class PaymentHandler:
    """Per action, the batch split by customer shard: one call per payment shard."""

    def __init__(self, settings: Settings, shards: Shards) -> None:
        self._count = settings.payment_shards
        self._shards = shards

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        # split the whole batch first: a poison event stops it before any shard is called
        plan = [
            (index, _PAYMENT_METHODS[action], part)
            for action, batch in routes.sort(registry.PAYMENT_GROUP, events).items()
            for index, part in self._split(batch).items()
        ]
        await asyncio.gather(*(self._shards.call(i, method, part) for i, method, part in plan))

    def _split(self, events: list[Envelope]) -> dict[int, list[Envelope]]:
        parts: dict[int, list[Envelope]] = defaultdict(list)
        for e in events:
            customer = e.data.get("customerId")
            if not isinstance(customer, str) or not customer:
                raise PoisonMessage(f"event {e.event_id} has no customerId")
            parts[registry.shard_of(customer, self._count)].append(e)
        return parts
