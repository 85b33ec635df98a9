"""Shipment rules over plain data: creation, steps, failure, cancellation, replays, holds."""

from __future__ import annotations

from domain import shipping as rules
from domain.model import OrderStatus
from domain.shipping import Shipment
from tests.unit.domain_fixtures import order


def _fixed() -> str:
    return "TRK1"


def test_a_paid_order_gets_one_created_shipment_and_an_event() -> None:
    o = order(OrderStatus.PAID)
    out = rules.create([(o, False)], tracking=_fixed)
    assert out.shipments == [Shipment(o.order_id, rules.CREATED, False, "TRK1")]
    assert [n.event for n in out.decision.notes] == ["ShipmentCreated"]
    assert [e.data["shipmentStatus"] for e in out.decision.events] == ["CREATED"]
    assert out.decision.moves == []


def test_an_order_cancelled_after_payment_gets_no_shipment() -> None:
    out = rules.create([(order(OrderStatus.CANCELLED), False), (None, False)], tracking=_fixed)
    assert out.shipments == [] and out.decision.events == []


def test_the_fault_flag_travels_with_the_shipment() -> None:
    out = rules.create([(order(OrderStatus.PAID), True)], tracking=_fixed)
    assert out.shipments[0].fail


def test_next_step_follows_created_then_shipped() -> None:
    assert rules.next_step(rules.CREATED) == rules.SHIPPED
    assert rules.next_step(rules.SHIPPED) == rules.DELIVERED
    assert rules.next_step(rules.DELIVERED) is None


def test_a_rebuilt_timer_waits_only_what_is_left_of_its_step_s_delay() -> None:
    assert rules.left_s(rules.SHIPPED, 0.0, 5.0, 60.0) == 5.0
    assert rules.left_s(rules.SHIPPED, 2.0, 5.0, 60.0) == 3.0
    assert rules.left_s(rules.DELIVERED, 20.0, 5.0, 60.0) == 40.0
    assert rules.left_s(rules.DELIVERED, 90.0, 5.0, 60.0) == 0.0  # overdue: at once
    assert rules.left_s(rules.SHIPPED, -1.0, 5.0, 60.0) == 5.0  # clocks apart: never longer


def _advance(status: OrderStatus, ship: str, step: str, *, fail: bool = False, held: bool = False):  # type: ignore[no-untyped-def]
    o = order(status)
    s = Shipment(o.order_id, ship, fail, "TRK1")
    out = rules.advance(
        {o.order_id: step}, {o.order_id: s}, {o.order_id: o}, {o.customer_id} if held else set()
    )
    return o, out


def test_a_created_shipment_ships_and_its_delivery_follows() -> None:
    o, out = _advance(OrderStatus.PAID, rules.CREATED, rules.SHIPPED)
    assert out.updates == [(rules.SHIPPED, o.order_id)]
    assert [m.target for m in out.decision.moves] == [OrderStatus.SHIPPED]
    assert out.follow == [o.order_id]


def test_a_shipped_shipment_is_delivered() -> None:
    o, out = _advance(OrderStatus.SHIPPED, rules.SHIPPED, rules.DELIVERED)
    assert [m.target for m in out.decision.moves] == [OrderStatus.DELIVERED]
    assert out.follow == []


def test_a_failing_shipment_refunds_the_order() -> None:
    o, out = _advance(OrderStatus.PAID, rules.CREATED, rules.SHIPPED, fail=True)
    [move] = out.decision.moves
    assert move.target == OrderStatus.REFUNDED
    assert move.detail is not None and move.detail["reason"] == rules.FAILED_REASON
    assert out.updates == [(rules.FAILED, o.order_id)] and out.follow == []


def test_a_replayed_step_changes_nothing_and_its_delivery_follows() -> None:
    """A SHIPPED step whose commit lost its answer is retried: the shipment shipped already, and
    the DELIVERED step nothing scheduled follows."""
    o, out = _advance(OrderStatus.SHIPPED, rules.SHIPPED, rules.SHIPPED)
    assert out.updates == [] and out.decision.moves == []
    assert out.follow == [o.order_id]


def test_a_replayed_delivery_does_nothing() -> None:
    _, out = _advance(OrderStatus.DELIVERED, rules.DELIVERED, rules.DELIVERED)
    assert out.updates == [] and out.decision.moves == [] and out.follow == []


def test_a_shipment_of_a_cancelled_order_is_cancelled_without_moving_the_order() -> None:
    o, out = _advance(OrderStatus.CANCELLED, rules.CREATED, rules.SHIPPED)
    assert out.updates == [(rules.CANCELLED, o.order_id)]
    assert out.decision.moves == []


def test_a_held_customer_waits_while_paid() -> None:
    o, out = _advance(OrderStatus.PAID, rules.CREATED, rules.SHIPPED, held=True)
    assert out.held == [(rules.SHIPPED, o.order_id)]
    assert out.updates == [] and out.decision.moves == []


def test_every_step_event_carries_the_tracking_number() -> None:
    _, out = _advance(OrderStatus.PAID, rules.CREATED, rules.SHIPPED)
    assert [m.target for m in out.decision.moves] == [OrderStatus.SHIPPED]
    assert all(
        m.emits is not None and m.emits.data["tracking"] == "TRK1" for m in out.decision.moves
    )
