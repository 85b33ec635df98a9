"""Consumers pass over the `shipping.updated` steps they do not act on without parsing them:
the byte markers must match the JSON that `Envelope.to_json` really writes."""

from __future__ import annotations

import uuid

import pytest

from consumers.handlers import PaymentHandler
from consumers.inventory import InventoryHandler
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
    ("handler", "acts_on"),
    [(InventoryHandler, {"SHIPPED", "FAILED"}), (PaymentHandler, {"DELIVERED", "FAILED"})],
)
def test_a_group_parses_exactly_the_shipment_steps_it_acts_on(
    handler: type, acts_on: set[str]
) -> None:
    markers = handler.ignored[Topic.SHIPPING_UPDATED]
    assert {s for s in STATUSES if not _skipped(markers, s)} == acts_on
