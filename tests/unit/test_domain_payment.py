"""Payment rules over plain data: decline methods, credit limit, outcomes, settlement."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from domain import payment as rules
from domain.model import OrderStatus
from tests.unit.domain_fixtures import order

LIMIT = Decimal("100")


def test_a_reserved_order_within_the_limit_is_approved() -> None:
    o = order(OrderStatus.RESERVED, total="40")
    charges, owed = rules.charges([o], {}, LIMIT)
    assert [c.approved for c in charges] == [True]
    assert owed == {"c-1": Decimal("40")}


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_insufficientFunds", "insufficient_funds"),
    ],
)
def test_declining_test_cards_decline_with_their_reason(method: str, reason: str) -> None:
    charges, owed = rules.charges([order(OrderStatus.RESERVED, method=method)], {}, LIMIT)
    assert charges[0].reason == reason
    assert owed == {}


def test_the_credit_limit_counts_outstanding_authorizations() -> None:
    charges, _ = rules.charges(
        [order(OrderStatus.RESERVED, total="30")], {"c-1": Decimal("80")}, LIMIT
    )
    assert charges[0].reason == "credit_limit_exceeded"


def test_approvals_earlier_in_a_batch_count_against_later_orders() -> None:
    a, b = order(OrderStatus.RESERVED, total="60"), order(OrderStatus.RESERVED, total="60")
    charges, owed = rules.charges([a, b], {}, LIMIT)
    assert [c.reason for c in charges] == [None, "credit_limit_exceeded"]
    assert owed == {"c-1": Decimal("60")}


def test_a_charge_exactly_at_the_limit_is_approved() -> None:
    charges, _ = rules.charges([order(OrderStatus.RESERVED, total="100")], {}, LIMIT)
    assert charges[0].approved


@pytest.mark.parametrize("status", [OrderStatus.CANCELLED, OrderStatus.PAID, OrderStatus.PENDING])
def test_an_order_no_longer_reserved_is_never_charged(status: OrderStatus) -> None:
    charges, owed = rules.charges([order(status)], {}, LIMIT)
    assert charges == [] and owed == {}


def test_a_missing_order_is_skipped() -> None:
    assert rules.charges([None], {}, LIMIT) == ([], {})


def test_outcomes_move_approved_to_paid_and_declined_to_declined() -> None:
    ok, bad = (
        order(OrderStatus.RESERVED),
        order(OrderStatus.RESERVED, method="pm_card_chargeDeclined"),
    )
    charges, _ = rules.charges([ok, bad], {}, LIMIT)
    decision, rows = rules.charge_outcomes(charges, ["ch_1"])
    targets = {m.order_id: (m.target, m.emits.type if m.emits else None) for m in decision.moves}
    assert targets == {
        ok.order_id: (OrderStatus.PAID, "PaymentAuthorized"),
        bad.order_id: (OrderStatus.DECLINED, "PaymentDeclined"),
    }
    assert [(r[0], r[3], r[5]) for r in rows] == [
        (ok.order_id, rules.AUTHORIZED, "ch_1"),
        (bad.order_id, rules.DECLINED, None),
    ]


def test_outcomes_need_one_reference_per_approval() -> None:
    charges, _ = rules.charges([order(OrderStatus.RESERVED)], {}, LIMIT)
    with pytest.raises(ValueError):
        rules.charge_outcomes(charges, [])


def test_settlement_lowers_the_outstanding_credit_and_forgets_who_owes_nothing() -> None:
    """Never below zero; a customer at zero leaves memory (it kept every customer ever
    authorized since the last reload, a map that only grew)."""
    owed = rules.settled(
        {"a": Decimal("50"), "b": Decimal("5"), "c": Decimal("7")},
        [("a", Decimal("20")), ("b", Decimal("9")), ("c", Decimal("7"))],
    )
    assert owed == {"a": Decimal("30")}


def test_refunds_emit_one_payment_refunded_per_settled_row() -> None:
    oid = uuid.uuid4()
    [event] = rules.refunds([(oid, "c-1", Decimal("12.50"))])
    assert event.type == "PaymentRefunded" and event.order_id == oid
    assert event.data == {"customerId": "c-1", "amount": "12.50"}
