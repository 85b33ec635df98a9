"""A notification batch sends each order's messages in its lifecycle order (review of
2026-12-06): the group lingers 250 ms, an order goes RESERVED → PAID → SHIPPED in less, and a
fetch lists its topics' records partition by partition, "shipped" first if its partition is."""

from __future__ import annotations

import uuid

from domain.events import new_event
from domain.notifications import to_send


def test_an_orders_messages_come_in_lifecycle_order() -> None:
    x, y = uuid.uuid4(), uuid.uuid4()
    batch = [
        new_event("ShippingUpdated", x, shipmentStatus="SHIPPED", tracking="T-1"),
        new_event("PaymentDeclined", y, reason="card_declined"),
        new_event("PaymentAuthorized", x, amount="10.00"),
        new_event("StockReserved", y),
        new_event("StockReserved", x),
    ]
    sent = [(e.order_id, m.status) for e, m in to_send(batch)]
    assert [s for o, s in sent if o == x] == ["RESERVED", "PAID", "SHIPPED"]
    assert [s for o, s in sent if o == y] == ["RESERVED", "DECLINED"]


def test_the_cancel_of_a_paid_order_says_its_payment_is_refunded() -> None:
    """The payment stage refunds a cancelled paid order, and `payment.refunded` sends no
    message: the customer was told "cancelled" and never that the money came back."""
    paid, reserved = uuid.uuid4(), uuid.uuid4()
    batch = [
        new_event("OrderCancelled", paid, reason="changed my mind", previous="PAID"),
        new_event("OrderCancelled", reserved, reason="changed my mind", previous="RESERVED"),
    ]
    texts = {e.order_id: m.text for e, m in to_send(batch)}
    assert texts[paid].endswith("(changed my mind). Its payment is refunded.")
    assert "refund" not in texts[reserved]
