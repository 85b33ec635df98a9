"""The notification actor: one message per order status, stored and sent on `notification.send`.

It also runs the `notification` consumer group itself (docs/adr/ADR-006): the group's only
effect is this actor's insert, and a separate bridge process parsed each event, pickled it into
an actor call and had it parsed again here, five events per order.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.base import Inspectable, open_uow, platform_actor, settled
from adapters import notifications as sql
from adapters.uow import Tx, UnitOfWork
from consumers import routes
from consumers.base import require_orders
from consumers.loop import ConsumerLoop
from core.registry import NOTIFICATION_GROUP
from core.settings import get_settings
from domain import notifications as rules
from domain.decision import Decision, OrderView
from domain.events import Envelope


@dataclass
class _Notify:
    """Render and record one message per (order, status); a duplicate does nothing. An event
    whose order does not exist is poison (the orders' statuses, which the stage reads anyway,
    say so), raised before anything is written."""

    consumer: str | None = None  # idempotent by the (order, status) key of its rows
    locks_orders: bool = False
    decision: Decision = field(default_factory=Decision)
    sent: int = 0

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Notify:
        now = await sql.statuses(tx.conn, list({e.order_id for e in events}))
        require_orders(events, now)  # read anyway: a missing order costs no statement of its own
        rows = rules.to_send(events, now)
        fresh = await sql.record(tx.conn, rows)
        for e, m in rows:  # once per message recorded now (a batch may carry an event twice)
            if (e.order_id, m.status) in fresh:
                fresh.discard((e.order_id, m.status))
                self.decision.events.append(rules.sent(e.order_id, m))
        self.sent = len(self.decision.events)
        return self


class _Group:
    """The `notification` group's handler: the batch goes straight to the unit of work."""

    def __init__(self, uow: UnitOfWork, counter: list[int]) -> None:
        self._uow = uow
        self._counter = counter

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        batch = routes.sort(NOTIFICATION_GROUP, events).get("notify", [])
        if batch:
            result, _ = await self._uow.run(_Notify(), batch)
            self._counter[0] += result.sent


@platform_actor(max_concurrency=16)
class NotificationActor(Inspectable):
    async def __init__(self) -> None:  # type: ignore[misc]
        settings = get_settings()
        self._sent = [0]
        uow = await open_uow(settings, 2, "notification")
        # off an order's way to SHIPPED: under load its group lingers for bigger batches
        self._consumer = ConsumerLoop(
            NOTIFICATION_GROUP, _Group(uow, self._sent), settings, settings.notify_linger_ms
        )
        settled(settings)

    async def health(self) -> dict[str, Any]:
        """The consumer loop's health (its status is this actor's) and what was sent."""
        return {"pid": os.getpid(), **self._consumer.health(), "sent": self._sent[0]}
