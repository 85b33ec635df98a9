"""Plain-data builders for the pure domain tests (no I/O)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from domain.decision import OrderView
from domain.events import Envelope, new_event
from domain.model import OrderStatus


def order(
    status: OrderStatus = OrderStatus.PENDING,
    *,
    customer: str = "c-1",
    principal: str = "customer1",
    total: str = "10.00",
    method: str = "pm_card_visa",
    items: list[dict[str, Any]] | None = None,
) -> OrderView:
    return OrderView(
        uuid.uuid4(),
        status,
        customer,
        principal,
        items if items is not None else [{"sku": "SKU-1", "qty": 1}],
        Decimal(total),
        method,
    )


def created(
    lines: list[tuple[str, int]], *, customer: str = "c-1", principal: str = "customer1"
) -> Envelope:
    return new_event(
        "OrderCreated",
        uuid.uuid4(),
        customerId=customer,
        principal=principal,
        items=[{"sku": s, "qty": q} for s, q in lines],
        total="1.00",
        paymentMethod="pm_card_visa",
    )
