"""Applying a decision's moves through the state machine, and notifications, over plain data."""

from __future__ import annotations

import uuid

from domain import notifications
from domain.decision import Move, apply_moves
from domain.events import new_event
from domain.inventory import OUT_OF_STOCK, TOO_MANY_HOLDS
from domain.model import OrderStatus
from tests.unit.domain_fixtures import order


def test_a_legal_move_applies_and_updates_the_view() -> None:
    o = order(OrderStatus.PENDING)
    orders = {o.order_id: o}
    [result] = apply_moves(orders, [Move(o.order_id, OrderStatus.RESERVED, "StockReserved")])
    assert result.applied and result.previous == OrderStatus.PENDING
    assert orders[o.order_id].status == OrderStatus.RESERVED


def test_an_illegal_move_is_not_applied() -> None:
    o = order(OrderStatus.DELIVERED)
    orders = {o.order_id: o}
    [result] = apply_moves(orders, [Move(o.order_id, OrderStatus.CANCELLED, "OrderCancelled")])
    assert not result.applied
    assert orders[o.order_id].status == OrderStatus.DELIVERED


def test_a_move_of_an_unknown_order_is_not_applied() -> None:
    [result] = apply_moves({}, [Move(uuid.uuid4(), OrderStatus.RESERVED, "StockReserved")])
    assert not result.applied and result.previous is None


def test_two_moves_of_one_order_in_a_batch_chain() -> None:
    o = order(OrderStatus.PAID)
    moves = [
        Move(o.order_id, OrderStatus.SHIPPED, "ShipmentShipped"),
        Move(o.order_id, OrderStatus.DELIVERED, "ShipmentDelivered"),
    ]
    assert [r.applied for r in apply_moves({o.order_id: o}, moves)] == [True, True]


def test_a_notification_is_rendered_for_each_customer_facing_event() -> None:
    oid = uuid.uuid4()
    events = [
        new_event("StockReserved", oid, customerId="c-1"),
        new_event("ShippingUpdated", oid, customerId="c-1", shipmentStatus="CREATED"),
        new_event(
            "ShippingUpdated", oid, customerId="c-1", shipmentStatus="SHIPPED", tracking="T1"
        ),
    ]
    rows = notifications.to_send(events)
    assert [m.status for _, m in rows] == ["RESERVED", "SHIPPED"]
    assert "T1" in rows[1][1].text


def test_a_sent_notification_becomes_a_notification_sent_event() -> None:
    oid = uuid.uuid4()
    [(_, message)] = notifications.to_send([new_event("StockReserved", oid, customerId="c-1")])
    event = notifications.sent(oid, message)
    assert event.type == "NotificationSent" and event.data["status"] == "RESERVED"


def test_a_rejection_tells_the_customer_its_reason() -> None:
    oid = uuid.uuid4()
    capped = new_event("StockRejected", oid, customerId="c-1", reason=TOO_MANY_HOLDS)
    short = new_event("StockRejected", oid, customerId="c-1", reason=OUT_OF_STOCK)
    texts = [m.text for _, m in notifications.to_send([capped, short])]
    assert texts[0].endswith(f": {TOO_MANY_HOLDS}.") and "out of stock" not in texts[0]
    assert texts[1].endswith(": out of stock.")


def test_progress_is_not_announced_for_an_order_that_ended_unfulfilled() -> None:
    """Events of several topics reach the stage in no set order: "payment authorized" after
    "order cancelled" would read like a charge after the cancellation."""
    cancelled, refunded, delivered, paid = (uuid.uuid4() for _ in range(4))
    events = [
        new_event("PaymentAuthorized", cancelled, customerId="c-1", amount="10.00"),
        new_event("OrderCancelled", cancelled, customerId="c-1", reason="by user"),
        new_event("StockReserved", refunded, customerId="c-1"),
        new_event("ShippingUpdated", refunded, customerId="c-1", shipmentStatus="FAILED"),
        new_event("ShippingUpdated", delivered, customerId="c-1", shipmentStatus="SHIPPED"),
        new_event("PaymentAuthorized", paid, customerId="c-1", amount="10.00"),
    ]
    now = {
        cancelled: OrderStatus.CANCELLED,
        refunded: OrderStatus.REFUNDED,
        delivered: OrderStatus.DELIVERED,  # ended fulfilled: a late SHIPPED is still true
        paid: OrderStatus.SHIPPED,
    }
    sent = [(e.order_id, m.status) for e, m in notifications.to_send(events, now)]
    # (in lifecycle order, not the batch's: tests/unit/test_notification_order.py)
    assert sorted(sent) == sorted(
        [
            (cancelled, "CANCELLED"),
            (refunded, "REFUNDED"),
            (delivered, "SHIPPED"),
            (paid, "PAID"),
        ]
    )
