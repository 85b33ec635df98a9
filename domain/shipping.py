"""Shipment rules: a paid order gets one shipment, which moves CREATED → SHIPPED → DELIVERED,
or FAILED (the order is refunded and its stock returned)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.decision import Decision, Move, Note, OrderView
from domain.events import Envelope, new_event
from domain.model import OrderStatus

CREATED, SHIPPED, DELIVERED, FAILED, CANCELLED = (
    "CREATED",
    "SHIPPED",
    "DELIVERED",
    "FAILED",
    "CANCELLED",
)
FAILED_REASON = "shipment failed; payment refunded and stock returned"
_NEXT = {CREATED: SHIPPED, SHIPPED: DELIVERED}
_ORDER_STATUS = {
    SHIPPED: OrderStatus.SHIPPED,
    DELIVERED: OrderStatus.DELIVERED,
    FAILED: OrderStatus.REFUNDED,
}


@dataclass(frozen=True)
class Shipment:
    order_id: uuid.UUID
    status: str
    fail: bool
    tracking: str


@dataclass
class Created:
    decision: Decision = field(default_factory=Decision)
    shipments: list[Shipment] = field(default_factory=list)


@dataclass
class Advanced:
    """Shipment status updates `(status, order)`, the orders' moves, the orders whose next step
    is due later (`follow`), and the steps a dev fault holds back (`held`)."""

    decision: Decision = field(default_factory=Decision)
    updates: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    follow: list[uuid.UUID] = field(default_factory=list)
    held: list[tuple[str, uuid.UUID]] = field(default_factory=list)


def new_tracking() -> str:
    return f"TRK{secrets.token_hex(6).upper()}"


def next_step(status: str) -> str | None:
    """The step a shipment in `status` waits for (None once it is over)."""
    return _NEXT.get(status)


def left_s(step: str, age_s: float, ship_delay_s: float, deliver_delay_s: float) -> float:
    """Seconds until `step` is due for a shipment whose status is `age_s` old: its delay less
    what has passed (never below 0), so timers rebuilt after a restart keep their times."""
    delay = ship_delay_s if step == SHIPPED else deliver_delay_s
    return max(0.0, delay - max(0.0, age_s))


def _updated(order: OrderView, **detail: Any) -> Envelope:
    return new_event(
        "ShippingUpdated", order.order_id, customerId=order.customer_id, items=order.items, **detail
    )


def create(
    orders: Iterable[tuple[OrderView | None, bool]],
    tracking: Callable[[], str] = new_tracking,
) -> Created:
    """One shipment per order still PAID (`(order, fail)`: `fail` is a dev fault that makes it
    fail when it would ship); an order cancelled after payment is left to the refund path."""
    out = Created()
    for order, fail in orders:
        if order is None or order.status != OrderStatus.PAID:
            continue
        ship = Shipment(order.order_id, CREATED, fail, tracking())
        out.shipments.append(ship)
        detail = {"shipmentStatus": CREATED, "tracking": ship.tracking}
        out.decision.notes.append(Note(order.order_id, order.status, "ShipmentCreated", detail))
        out.decision.events.append(_updated(order, **detail))
    return out


def advance(
    steps: Mapping[uuid.UUID, str],
    shipments: Mapping[uuid.UUID, Shipment],
    orders: Mapping[uuid.UUID, OrderView],
    held: set[str],
) -> Advanced:
    """Take each due step (`order → SHIPPED | DELIVERED`). A step already taken (a replay) does
    nothing but have its own next step follow (it was taken by a commit whose answer was lost,
    so nothing scheduled that step); a shipment whose order was cancelled before it left is
    cancelled; a held customer's PAID orders wait."""
    out = Advanced()
    for oid, step in steps.items():
        ship, order = shipments.get(oid), orders.get(oid)
        if ship is None or order is None:
            continue
        if _NEXT.get(ship.status) != step:
            if ship.status == step == SHIPPED:
                out.follow.append(oid)
            continue
        if order.customer_id in held and order.status == OrderStatus.PAID:
            out.held.append((step, oid))
            continue
        if order.status not in (OrderStatus.PAID, OrderStatus.SHIPPED):
            out.updates.append((CANCELLED, oid))
            continue
        status = FAILED if ship.fail and step == SHIPPED else step
        out.updates.append((status, oid))
        detail: dict[str, Any] = {"shipmentStatus": status, "tracking": ship.tracking}
        if status == FAILED:
            detail["reason"] = FAILED_REASON
        event = _updated(order, **detail)
        target = _ORDER_STATUS[status]
        out.decision.moves.append(Move(oid, target, f"Shipment{status.title()}", detail, event))
        if status == SHIPPED:
            out.follow.append(oid)
    return out
