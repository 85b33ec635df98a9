"""The notification actor: one message per order status, stored and sent on `notification.send`.

It also runs the `notification` consumer group itself (docs/adr/ADR-006): the group's only
effect is this actor's insert, and a separate bridge process parsed each event, pickled it into
an actor call and had it parsed again here, five events per order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from adapters.pg import insert_outbox, open_pool
from consumers.bridge import ConsumerLoop
from core.priority import renice_process
from core.registry import NOTIFICATION_GROUP, platform_actor
from core.settings import get_settings
from domain.events import Envelope, Topic, new_event
from domain.notifications import render

log = logging.getLogger(__name__)


class _Notifications:
    """The `notification` group's handler: the batch goes straight to `notify_batch`."""

    topics = (
        Topic.INVENTORY_RESERVED,
        Topic.INVENTORY_REJECTED,
        Topic.PAYMENT_AUTHORIZED,
        Topic.PAYMENT_DECLINED,
        Topic.SHIPPING_UPDATED,
        Topic.ORDER_CANCELLED,
    )
    events_per_order = 5  # reserved, authorized, shipping CREATED, SHIPPED, DELIVERED
    ignored: dict[str, tuple[bytes, ...]] = {}

    def __init__(self, notify: Callable[[list[Envelope]], Awaitable[None]]) -> None:
        self._notify = notify

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        await self._notify([e for _, e in events])

    async def close(self) -> None:
        return None


@platform_actor(max_concurrency=16)
class NotificationActor:
    async def __init__(self) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        renice_process(self._settings.pipeline_niceness, "notification")
        self._pool = await open_pool(self._settings.database_url, 2, "notification")
        self._sent = 0
        self._consumer = ConsumerLoop(
            NOTIFICATION_GROUP, _Notifications(self.notify_batch), self._settings
        )

    async def health(self) -> dict[str, Any]:
        """The consumer loop's health (its status is this actor's) and what was sent."""
        return {"pid": os.getpid(), **self._consumer.health(), "sent": self._sent}

    async def notify_batch(self, events: list[Envelope]) -> None:
        """Render and record one notification per (order, status); duplicates do nothing."""
        rows = []
        for e in events:
            message = render(e)
            if message is not None:
                rows.append((e, message))
        if not rows:
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO notifications "
                "(order_id, status, customer_id, channel, template, text) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], "
                "%s::text[]) ON CONFLICT DO NOTHING RETURNING order_id, status",
                (
                    [e.order_id for e, _ in rows],
                    [m.status for _, m in rows],
                    [m.customer_id for _, m in rows],
                    [m.channel for _, m in rows],
                    [m.template for _, m in rows],
                    [m.text for _, m in rows],
                ),
            )
            fresh = {(r["order_id"], r["status"]) for r in await cur.fetchall()}
            await insert_outbox(
                conn,
                [
                    new_event(
                        "NotificationSent",
                        e.order_id,
                        customerId=m.customer_id,
                        channel=m.channel,
                        template=m.template,
                        text=m.text,
                        status=m.status,
                    )
                    for e, m in rows
                    if (e.order_id, m.status) in fresh
                ],
            )
        self._sent += len(fresh)
