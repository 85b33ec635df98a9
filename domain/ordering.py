"""What a customer may do with an order after placing it: cancel it while nothing has shipped."""

from __future__ import annotations

import uuid

from domain.decision import Decision, Move, OrderView
from domain.errors import Conflict, NotFound
from domain.events import new_event
from domain.model import CANCELLABLE, OrderStatus


def cancel(
    order_id: uuid.UUID,
    order: OrderView | None,
    who: str,
    is_admin: bool,
    reason: str,
    owner: str | None = None,
) -> Decision:
    """Cancel `order` for `who`: the principal that placed it, the `owner` of its customer id
    (an admin may place orders for anyone's), or an admin; anyone else is told it does not
    exist. Raises `NotFound`, or `Conflict` once it has shipped or ended."""
    if order is None or not (is_admin or who in (order.principal, owner)):
        raise NotFound(f"order {order_id} not found")
    if order.status not in CANCELLABLE:
        raise Conflict(
            f"order is {order.status.value}: only PENDING, RESERVED or PAID orders can be "
            "cancelled",
            {"status": order.status.value},
        )
    event = new_event(
        "OrderCancelled",
        order_id,
        reason=reason,
        customerId=order.customer_id,
        previous=order.status.value,
    )
    detail = {"reason": reason, "by": who}
    return Decision(moves=[Move(order_id, OrderStatus.CANCELLED, "OrderCancelled", detail, event)])
