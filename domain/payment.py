"""Payment rules: Stripe-style test payment methods and the per-customer credit limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.decision import Decision, Move, OrderView
from domain.events import Envelope, new_event
from domain.model import OrderStatus

DECLINING_METHODS: dict[str, str] = {
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_insufficientFunds": "insufficient_funds",
}


def decide(method: str, amount: Decimal, outstanding: Decimal, limit: Decimal) -> str | None:
    """Return the decline reason, or None when the charge may be authorized."""
    if method in DECLINING_METHODS:
        return DECLINING_METHODS[method]
    if outstanding + amount > limit:
        return "credit_limit_exceeded"
    return None


AUTHORIZED, DECLINED, CAPTURED, REFUNDED = "AUTHORIZED", "DECLINED", "CAPTURED", "REFUNDED"


@dataclass(frozen=True)
class Charge:
    """The decision for one order: `reason` None means authorize."""

    order: OrderView
    reason: str | None

    @property
    def approved(self) -> bool:
        return self.reason is None


def charges(
    orders: Iterable[OrderView | None], outstanding: Mapping[str, Decimal], limit: Decimal
) -> tuple[list[Charge], dict[str, Decimal]]:
    """Decide each order still RESERVED (a cancelled or expired one is never charged), counting
    earlier approvals of the batch against the customer's credit; returns the charges and the
    customers' new outstanding amounts."""
    owed = dict(outstanding)
    out: list[Charge] = []
    for order in orders:
        if order is None or order.status != OrderStatus.RESERVED:
            continue
        before = owed.get(order.customer_id, Decimal("0"))
        reason = decide(order.payment_method, order.total, before, limit)
        if reason is None:
            owed[order.customer_id] = before + order.total
        out.append(Charge(order, reason))
    return out, owed


def charge_outcomes(
    decided: Sequence[Charge], refs: Sequence[str]
) -> tuple[Decision, list[tuple[uuid.UUID, str, Decimal, str, str | None, str | None]]]:
    """The status moves and the payment rows `(order, customer, amount, status, reason, ref)`
    of decided charges; `refs` are the provider's references of the approved ones, in order."""
    if len(refs) != sum(c.approved for c in decided):
        raise ValueError("one provider reference per approved charge")
    refs_left = iter(refs)
    decision = Decision()
    rows = []
    for c in decided:
        o = c.order
        ref = next(refs_left) if c.approved else None
        data: dict[str, Any] = {"customerId": o.customer_id, "amount": str(o.total)}
        data |= {"reason": c.reason, "items": o.items}
        if c.approved:
            event = new_event("PaymentAuthorized", o.order_id, **data)
            detail: dict[str, Any] = {"amount": str(o.total), "providerRef": ref}
            move = Move(o.order_id, OrderStatus.PAID, "PaymentAuthorized", detail, event)
        else:
            event = new_event("PaymentDeclined", o.order_id, **data)
            move = Move(
                o.order_id, OrderStatus.DECLINED, "PaymentDeclined", {"reason": c.reason}, event
            )
        decision.moves.append(move)
        status = AUTHORIZED if c.approved else DECLINED
        rows.append((o.order_id, o.customer_id, o.total, status, c.reason, ref))
    return decision, rows


def settled(
    outstanding: Mapping[str, Decimal], released: Iterable[tuple[str, Decimal]]
) -> dict[str, Decimal]:
    """Outstanding credit after authorizations `(customer, amount)` were captured or refunded
    (never below zero); a customer who owes nothing is left out, so memory holds the customers
    with open authorizations only, as a reload from Postgres does."""
    owed = dict(outstanding)
    for customer, amount in released:
        left = owed.get(customer, Decimal("0")) - amount
        if left > 0:
            owed[customer] = left
        else:
            owed.pop(customer, None)
    return owed


def refunds(settled_rows: Iterable[tuple[uuid.UUID, str, Decimal]]) -> list[Envelope]:
    """`PaymentRefunded` for each refunded authorization `(order, customer, amount)`."""
    return [
        new_event("PaymentRefunded", oid, customerId=customer, amount=str(amount))
        for oid, customer, amount in settled_rows
    ]
