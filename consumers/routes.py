"""The one table of what the pipeline consumes: per consumer group, topic → stage action.

A `shipping.updated` event carries a shipment step; a group takes only the steps its routes
name and passes over the others unparsed (byte markers of the JSON `Envelope.to_json` writes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from consumers.base import PoisonMessage
from domain.events import Envelope, Topic


@dataclass(frozen=True)
class Route:
    topic: str
    action: str
    steps: tuple[str, ...] = ()  # shipment steps taken (shipping.updated only); () = all


_NOTIFY = (
    Topic.INVENTORY_RESERVED,
    Topic.INVENTORY_REJECTED,
    Topic.PAYMENT_AUTHORIZED,
    Topic.PAYMENT_DECLINED,
    Topic.SHIPPING_UPDATED,
    Topic.ORDER_CANCELLED,
)
GROUPS: dict[str, tuple[Route, ...]] = {
    "inventory": (
        Route(Topic.ORDER_CREATED, "reserve"),
        Route(Topic.PAYMENT_DECLINED, "release"),
        Route(Topic.ORDER_CANCELLED, "release"),
        Route(Topic.SHIPPING_UPDATED, "release", ("FAILED",)),
        Route(Topic.SHIPPING_UPDATED, "commit", ("SHIPPED",)),
    ),
    "payment": (
        Route(Topic.INVENTORY_RESERVED, "authorize"),
        Route(Topic.ORDER_CANCELLED, "refund"),
        Route(Topic.SHIPPING_UPDATED, "refund", ("FAILED",)),
        Route(Topic.SHIPPING_UPDATED, "capture", ("DELIVERED",)),
    ),
    "shipping": (Route(Topic.PAYMENT_AUTHORIZED, "create"),),
    "notification": tuple(Route(t, "notify") for t in _NOTIFY),
}
SHIPMENT_STEPS = ("CREATED", "SHIPPED", "DELIVERED", "FAILED")


def topics(group: str) -> tuple[str, ...]:
    """The topics a group subscribes to, in table order."""
    return tuple(dict.fromkeys(r.topic for r in GROUPS[group]))


def _marker(step: str) -> bytes:
    return b'"shipmentStatus":"%s"' % step.encode()


def ignored(group: str) -> dict[str, tuple[bytes, ...]]:
    """Per topic, markers of the events the group passes over without parsing them."""
    out: dict[str, tuple[bytes, ...]] = {}
    for topic in topics(group):
        routes = [r for r in GROUPS[group] if r.topic == topic]
        if any(not r.steps for r in routes):
            continue
        taken = {s for r in routes for s in r.steps}
        out[topic] = tuple(_marker(s) for s in SHIPMENT_STEPS if s not in taken)
    return out


def sort(group: str, events: Iterable[tuple[str, Envelope]]) -> dict[str, list[Envelope]]:
    """The batch's events per action of the group's stage (an event no route takes: none).
    A `shipping.updated` event without a known step is wrong, whichever group reads it:
    `PoisonMessage` (the dead-letter topic), never passed over unseen."""
    table: dict[tuple[str, str | None], str] = {}
    for r in GROUPS[group]:
        for step in r.steps or (None,):
            table[(r.topic, step)] = r.action
    out: dict[str, list[Envelope]] = defaultdict(list)
    for topic, e in events:
        step = e.data.get("shipmentStatus")
        if topic == Topic.SHIPPING_UPDATED and step not in SHIPMENT_STEPS:
            raise PoisonMessage(f"{topic} event {e.event_id}: unknown shipmentStatus {step!r}")
        action = table.get((topic, None)) or table.get((topic, step))
        if action is not None:
            out[action].append(e)
    return out
