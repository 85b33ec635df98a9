"""The order state machine: pure, no infrastructure."""

from __future__ import annotations

from enum import StrEnum

from domain.errors import InvalidTransition


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


TERMINAL: frozenset[OrderStatus] = frozenset(
    {
        OrderStatus.DELIVERED,
        OrderStatus.REJECTED,
        OrderStatus.DECLINED,
        OrderStatus.CANCELLED,
        OrderStatus.REFUNDED,
    }
)

#: Statuses from which a customer may still cancel (nothing has shipped).
CANCELLABLE: frozenset[OrderStatus] = frozenset(
    {OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.PAID}
)

_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.RESERVED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.RESERVED: frozenset(
        {OrderStatus.PAID, OrderStatus.DECLINED, OrderStatus.CANCELLED}
    ),
    OrderStatus.PAID: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED, OrderStatus.REFUNDED}),
    # (a shipment fails at its SHIPPED step, the order still PAID: nothing refunds a shipped one,
    # whose stock has left for good)
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
}


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    """True when `current → target` is a legal move of the order state machine."""
    return target in _ALLOWED.get(current, frozenset())


def transition(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    """Return `target` if the move is legal, else raise `InvalidTransition`."""
    if not can_transition(current, target):
        raise InvalidTransition(f"order cannot move from {current} to {target}")
    return target


def is_terminal(status: OrderStatus) -> bool:
    """True for statuses that end an order's life."""
    return status in TERMINAL
