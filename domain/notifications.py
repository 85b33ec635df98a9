"""Which events notify the customer, and the rendered text."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from domain.events import Envelope, new_event
from domain.model import OrderStatus, is_terminal

# An order that ended without being fulfilled: a progress message (RESERVED, PAID, SHIPPED)
# that reaches the stage after that is stale, and would contradict the message that ended it.
_ENDED_UNFULFILLED = frozenset(
    {OrderStatus.REJECTED, OrderStatus.DECLINED, OrderStatus.CANCELLED, OrderStatus.REFUNDED}
)

_TEMPLATES: dict[str, tuple[str, str]] = {
    # event type (or ShippingUpdated:<shipment status>) -> (order status, text)
    "StockReserved": ("RESERVED", "We have reserved the items of order {oid}."),
    "StockRejected": ("REJECTED", "Sorry, order {oid} could not be fulfilled: {reason}."),
    "PaymentAuthorized": ("PAID", "Payment of {amount} for order {oid} is authorized."),
    "PaymentDeclined": ("DECLINED", "Payment for order {oid} was declined ({reason})."),
    "ShippingUpdated:SHIPPED": ("SHIPPED", "Order {oid} has shipped, tracking {tracking}."),
    "ShippingUpdated:DELIVERED": ("DELIVERED", "Order {oid} was delivered."),
    "ShippingUpdated:FAILED": ("REFUNDED", "Shipping of order {oid} failed; you were refunded."),
    "OrderCancelled": ("CANCELLED", "Order {oid} was cancelled ({reason})."),
}

# A cancelled order that was paid is refunded (`payment.refunded`, which sends no message of
# its own): the cancel's message says so, as a failed shipment's does.
_REFUND_NOTE = " Its payment is refunded."


# The statuses a message reports, in the order an order reaches them (a sort key: the
# statuses that end an order unfulfilled come after every progress message).
_RANK = {
    status: rank
    for rank, status in enumerate(
        ("RESERVED", "PAID", "SHIPPED", "DELIVERED", "REJECTED", "DECLINED", "CANCELLED")
    )
}


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    customer_id: str
    status: str
    channel: str
    template: str
    text: str


def render(event: Envelope) -> Notification | None:
    """The notification an event causes, or None when it causes none."""
    key = event.type
    if key == "ShippingUpdated":
        key = f"{key}:{event.data.get('shipmentStatus')}"
    spec = _TEMPLATES.get(key)
    if spec is None:
        return None
    status, text = spec
    if key == "OrderCancelled" and event.data.get("previous") == OrderStatus.PAID.value:
        text += _REFUND_NOTE  # the payment stage refunds a paid order that is cancelled
    fields = {
        "oid": str(event.order_id),
        "amount": event.data.get("amount", ""),
        "reason": event.data.get("reason") or "no reason given",
        "tracking": event.data.get("tracking", ""),
    }
    return Notification(
        customer_id=str(event.data.get("customerId", "")),
        status=status,
        channel="email",
        template=key.lower().replace(":", "_"),
        text=text.format(**fields),
    )


def to_send(
    events: list[Envelope], statuses: Mapping[uuid.UUID, str] | None = None
) -> list[tuple[Envelope, Notification]]:
    """The notifications a batch causes, one per (order, status) that has a template.

    `statuses` are the orders' current statuses: a progress message for an order that has
    since ended unfulfilled is not sent. The stage reads several topics, which have no order
    between them; a group behind on `payment.authorized` but not on `order.cancelled` would
    otherwise tell the customer "payment authorized" after "order cancelled". The messages
    come in lifecycle order (`_RANK`, a stable sort); across batches a group behind on one
    topic can still send an order's messages out of order."""
    now = statuses or {}
    out = []
    for e in events:
        message = render(e)
        if message is None:
            continue
        ended = now.get(e.order_id) in _ENDED_UNFULFILLED
        if ended and not is_terminal(OrderStatus(message.status)):
            continue
        out.append((e, message))
    # in an order's lifecycle order: a batch carries several topics' events in the order of
    # their partitions in the fetch, and "shipped" could go out before "payment authorized"
    out.sort(key=lambda pair: _RANK.get(pair[1].status, len(_RANK)))
    return out


def sent(order_id: uuid.UUID, message: Notification) -> Envelope:
    """The `NotificationSent` event of a message recorded for the first time."""
    return new_event(
        "NotificationSent",
        order_id,
        customerId=message.customer_id,
        channel=message.channel,
        template=message.template,
        text=message.text,
        status=message.status,
    )
