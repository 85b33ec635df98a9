"""Consumers pass over the `shipping.updated` steps they do not act on without parsing them:
the byte markers must match the JSON that `Envelope.to_json` really writes."""

from __future__ import annotations

import uuid

import pytest

from consumers import routes
from consumers.base import PoisonMessage
from domain.events import Topic, new_event

STATUSES = ("CREATED", "SHIPPED", "DELIVERED", "FAILED")


def _skipped(markers: tuple[bytes, ...], status: str) -> bool:
    raw = new_event(
        "ShippingUpdated",
        uuid.uuid4(),
        customerId="c-1",
        items=[{"sku": "SKU-1", "qty": 1}],
        shipmentStatus=status,
        tracking="TRK1",
    ).to_json()
    return any(m in raw for m in markers)


@pytest.mark.parametrize(
    ("group", "acts_on"),
    [
        ("inventory", {"SHIPPED", "FAILED"}),
        ("payment", {"DELIVERED", "FAILED"}),
        ("notification", set(STATUSES)),
    ],
)
def test_a_group_parses_exactly_the_shipment_steps_it_acts_on(
    group: str, acts_on: set[str]
) -> None:
    markers = routes.ignored(group).get(Topic.SHIPPING_UPDATED, ())
    assert {s for s in STATUSES if not _skipped(markers, s)} == acts_on


@pytest.mark.parametrize(
    ("group", "topic", "step", "action"),
    [
        ("inventory", Topic.ORDER_CREATED, None, "reserve"),
        ("inventory", Topic.PAYMENT_DECLINED, None, "release"),
        ("inventory", Topic.ORDER_CANCELLED, None, "release"),
        ("inventory", Topic.SHIPPING_UPDATED, "FAILED", "release"),
        ("inventory", Topic.SHIPPING_UPDATED, "SHIPPED", "commit"),
        ("inventory", Topic.SHIPPING_UPDATED, "DELIVERED", None),
        ("payment", Topic.INVENTORY_RESERVED, None, "authorize"),
        ("payment", Topic.ORDER_CANCELLED, None, "refund"),
        ("payment", Topic.SHIPPING_UPDATED, "FAILED", "refund"),
        ("payment", Topic.SHIPPING_UPDATED, "DELIVERED", "capture"),
        ("payment", Topic.SHIPPING_UPDATED, "SHIPPED", None),
        ("shipping", Topic.PAYMENT_AUTHORIZED, None, "create"),
        ("notification", Topic.SHIPPING_UPDATED, "CREATED", "notify"),
    ],
)
def test_the_route_table_sends_each_event_to_its_stage_action(
    group: str, topic: str, step: str | None, action: str | None
) -> None:
    data = {"shipmentStatus": step} if step else {}
    event = new_event("ShippingUpdated" if step else "OrderCreated", uuid.uuid4(), **data)
    sorted_ = routes.sort(group, [(topic, event)])
    assert {a for a, batch in sorted_.items() if batch} == ({action} if action else set())


@pytest.mark.parametrize("group", ["inventory", "payment", "notification"])
@pytest.mark.parametrize("step", [None, "BOGUS", ["SHIPPED"]])
def test_a_shipment_event_without_a_known_step_is_poison_in_every_group(
    group: str, step: object
) -> None:
    """Not passed over as a step the group does not take: it goes to the dead-letter topic."""
    data = {} if step is None else {"shipmentStatus": step}
    event = new_event("ShippingUpdated", uuid.uuid4(), **data)
    with pytest.raises(PoisonMessage, match="unknown shipmentStatus"):
        routes.sort(group, [(Topic.SHIPPING_UPDATED, event)])
