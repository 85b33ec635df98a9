"""Response models of the public API (camelCase, as in the seed), with examples: the OpenAPI
document shows them and schemathesis checks every answer against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from domain.model import OrderStatus

_ORDER_ID = "0197a3c2-5b1e-7c3d-9f2a-1b2c3d4e5f60"


def _config(**example: Any) -> ConfigDict:
    """Fields in snake_case, on the wire in camelCase; unknown fields are a bug."""
    return ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        serialize_by_alias=True,
        json_schema_extra={"examples": [example]} if example else None,
    )


class ErrorBody(BaseModel):
    model_config = _config()

    code: str = Field(description="stable, machine-readable", examples=["not_found"])
    message: str = Field(description="what happened and what to do next")
    details: Any = Field(default=None, description="where and what, e.g. validation errors")


class ErrorEnvelope(BaseModel):
    """Every error of the API."""

    model_config = _config(error={"code": "not_found", "message": "order not found"})

    error: ErrorBody


class Links(BaseModel):
    model_config = _config()

    self_: str = Field(alias="self")
    events: str
    cancel: str


class Accepted(BaseModel):
    """An order taken (202): stored with its `order.created` event; it moves on from PENDING."""

    model_config = _config(
        orderId=_ORDER_ID,
        status="PENDING",
        total=29.0,
        currency="USD",
        links={
            "self": f"/api/orders/{_ORDER_ID}",
            "events": f"/api/orders/{_ORDER_ID}/events",
            "cancel": f"/api/orders/{_ORDER_ID}/cancel",
        },
    )

    order_id: str
    status: Literal["PENDING"]
    total: float
    currency: str
    links: Links


class OrderLineView(BaseModel):
    model_config = _config()

    sku: str
    qty: int
    unit_price: float


class TimelineEntry(BaseModel):
    model_config = _config()

    status: OrderStatus
    event: str
    at: str = Field(description="ISO 8601 timestamp")
    detail: dict[str, Any] | None = None


class Order(BaseModel):
    """An order as its owner (or an admin) sees it; `timeline` only on the single-order read."""

    model_config = _config(
        orderId=_ORDER_ID,
        customerId="c-1",
        status="PAID",
        items=[{"sku": "SKU-1", "qty": 2, "unitPrice": 14.5}],
        total=29.0,
        currency="USD",
        paymentMethod="pm_card_visa",
        createdAt="2026-01-01T12:00:00+00:00",
        updatedAt="2026-01-01T12:00:01+00:00",
        timeline=[
            {"status": "PENDING", "event": "OrderCreated", "at": "2026-01-01T12:00:00+00:00"},
            {"status": "RESERVED", "event": "StockReserved", "at": "2026-01-01T12:00:00+00:00"},
            {"status": "PAID", "event": "PaymentAuthorized", "at": "2026-01-01T12:00:01+00:00"},
        ],
    )

    order_id: str
    customer_id: str
    status: OrderStatus
    items: list[OrderLineView]
    total: float
    currency: str
    payment_method: str
    created_at: str
    updated_at: str
    reason: str | None = None
    timeline: list[TimelineEntry] | None = None


class OrderPage(BaseModel):
    """Newest first; pass `nextCursor` back as `cursor` for the next page (null: last page)."""

    model_config = _config()

    items: list[Order]
    next_cursor: str | None


class Cancelled(BaseModel):
    model_config = _config(orderId=_ORDER_ID, status="CANCELLED")

    order_id: str
    status: Literal["CANCELLED"]


class Stock(BaseModel):
    model_config = _config(sku="SKU-1", onHand=1000, reserved=2, available=998)

    sku: str
    on_hand: int
    reserved: int
    available: int


class FaultState(BaseModel):
    model_config = _config(fault="payment-provider", customerId=None, enabled=True)

    fault: Literal["payment-provider", "shipping-fail", "shipping-hold"]
    customer_id: str | None
    enabled: bool


class Health(BaseModel):
    model_config = _config()

    status: Literal["ok"]


class Readiness(BaseModel):
    """`checks` (per dependency) only for admins; everyone else gets the overall status."""

    model_config = _config(
        status="up", checks={"postgres": {"status": "up"}, "payments": {"status": "up"}}
    )

    status: Literal["up", "degraded", "down"]
    checks: dict[str, dict[str, Any]] | None = None
