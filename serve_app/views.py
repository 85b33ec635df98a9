"""Rows as clients see them (serve_app/models.py); optional fields are left unset, not null."""

from __future__ import annotations

import uuid
from decimal import Decimal

from adapters.pg import Row
from domain.catalog import CURRENCY
from serve_app.models import Accepted, Links, Order, OrderLineView, Stock, TimelineEntry


def _money(value: Decimal | float | str) -> float:
    return float(Decimal(str(value)).quantize(Decimal("0.01")))


def _entry(t: Row, viewer: str | None) -> TimelineEntry:
    detail = t["detail"]
    if detail and viewer is not None and detail.get("by", viewer) != viewer:
        # who acted, when it was not the customer (an admin's cancel): for admins' eyes only
        detail = {k: v for k, v in detail.items() if k != "by"}
    if detail:
        return TimelineEntry(
            status=t["status"], event=t["event"], at=t["at"].isoformat(), detail=detail
        )
    return TimelineEntry(status=t["status"], event=t["event"], at=t["at"].isoformat())


def order_view(row: Row, timeline: list[Row] | None = None, viewer: str | None = None) -> Order:
    """An order as clients see it (with its timeline when given). `viewer`: the customer's
    principal (None for an admin), who does not see which staff member acted on it."""
    extra: dict[str, object] = {}
    if row.get("reason"):
        extra["reason"] = row["reason"]
    if timeline is not None:
        extra["timeline"] = [_entry(t, viewer) for t in timeline]
    return Order(
        order_id=str(row["id"]),
        customer_id=row["customer_id"],
        status=row["status"],
        items=[
            OrderLineView(sku=i["sku"], qty=i["qty"], unit_price=_money(i["unitPrice"]))
            for i in row["items"]
        ],
        total=_money(row["total"]),
        currency=row["currency"],
        payment_method=row["payment_method"],
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
        **extra,
    )


def stock_view(row: Row) -> Stock:
    return Stock(
        sku=row["sku"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        available=row["on_hand"] - row["reserved"],
    )


def accepted_view(order_id: uuid.UUID, total: Decimal) -> Accepted:
    """The 202 body of an accepted order (also what a replayed Idempotency-Key returns)."""
    base = f"/api/orders/{order_id}"
    return Accepted(
        order_id=str(order_id),
        status="PENDING",
        total=float(total),
        currency=CURRENCY,
        links=Links.model_validate(
            {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}
        ),
    )
