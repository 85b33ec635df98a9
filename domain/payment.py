"""Payment rules: Stripe-style test payment methods and the per-customer credit limit."""

from __future__ import annotations

from decimal import Decimal

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
