"""The notification stage against the real stack: what it tells the customer, and when not."""

from __future__ import annotations

import asyncio
from typing import Any

from core.settings import Settings
from domain.events import Topic, new_event
from tests.integration.conftest import (
    publish_in_one_batch,
    scratch_order,
    wait_committed,
    wait_until,
)


def _messages(pg: Any, order_id: Any) -> list[str]:
    rows = pg.execute(
        "SELECT status FROM notifications WHERE order_id = %s ORDER BY created_at, status",
        (order_id,),
    )
    return [r["status"] for r in rows]


def test_a_late_progress_event_of_a_cancelled_order_tells_the_customer_nothing(
    settings: Settings, pg: Any, customer: str
) -> None:
    """The group read `order.cancelled` before an older `payment.authorized` and
    `inventory.reserved` of the same order (a group behind on the busy topics, or catching up
    after a restart): the customer was told "payment authorized" after "cancelled"."""
    oid = scratch_order(pg, customer, "CANCELLED")
    data = {"customerId": customer}
    cancelled = new_event("OrderCancelled", oid, reason="cancelled by user", **data)
    asyncio.run(publish_in_one_batch(settings.kafka_bootstrap, Topic.ORDER_CANCELLED, [cancelled]))
    wait_until(lambda: _messages(pg, oid) == ["CANCELLED"], what="the cancellation's message")
    late = [
        (Topic.PAYMENT_AUTHORIZED, new_event("PaymentAuthorized", oid, amount="1.00", **data)),
        (Topic.INVENTORY_RESERVED, new_event("StockReserved", oid, **data)),
    ]
    for topic, event in late:
        partition, offset = asyncio.run(
            publish_in_one_batch(settings.kafka_bootstrap, topic, [event])
        )
        wait_committed(settings.kafka_bootstrap, "notification", topic, partition, offset)
    assert _messages(pg, oid) == ["CANCELLED"]
