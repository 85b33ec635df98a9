"""Commands: what a client asks for. Validation rules of the public contract live here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SKU_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PaymentMethod = Literal["pm_card_visa", "pm_card_chargeDeclined", "pm_card_insufficientFunds"]


class _Command(BaseModel):
    # extra="forbid": no mass assignment; status, price and amount come from the server only.
    # The wire names only (camelCase, as the published schema says): `customer_id` is an
    # unknown field, not another spelling of `customerId`.
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderLine(_Command):
    sku: Annotated[str, Field(pattern=SKU_PATTERN)]
    qty: Annotated[int, Field(ge=1, le=1000, strict=True)]


class PlaceOrder(_Command):
    customer_id: Annotated[str, Field(alias="customerId", pattern=SKU_PATTERN)]
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=100)]
    payment_method: PaymentMethod = Field(default="pm_card_visa", alias="paymentMethod")


class CancelOrder(_Command):
    """A cancel takes no fields: its body, when one is sent, is `{}`."""


class SetStock(_Command):
    on_hand: Annotated[int, Field(alias="onHand", ge=0, le=1_000_000_000, strict=True)]


def merge_lines(lines: list[OrderLine]) -> dict[str, int]:
    """Collapse repeated SKUs into one quantity each, in first-seen order."""
    return sum_by_sku((line.sku, line.qty) for line in lines)


def sum_by_sku(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """`(sku, qty)` lines as one quantity per SKU, in first-seen order."""
    summed: dict[str, int] = {}
    for sku, qty in lines:
        summed[sku] = summed.get(sku, 0) + qty
    return summed
