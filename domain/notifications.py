"""Which events notify the customer, and the rendered text."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

from domain.events import Envelope, new_event

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


def to_send(events: list[Envelope]) -> list[tuple[Envelope, Notification]]:
    """The notifications a batch causes, one per (order, status) that has a template."""
    out = []
    for e in events:
        message = render(e)
        if message is not None:
            out.append((e, message))
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
