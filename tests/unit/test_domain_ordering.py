"""Cancellation rules over plain data."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from domain import ordering
from domain.errors import Conflict, NotFound
from domain.model import OrderStatus
from tests.unit.domain_fixtures import order


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.PAID])
def test_the_owner_cancels_until_the_order_ships(status: OrderStatus) -> None:
    o = order(status)
    [move] = ordering.cancel(o.order_id, o, "customer1", False, "changed my mind").moves
    assert move.target == OrderStatus.CANCELLED
    assert move.detail == {"reason": "changed my mind", "by": "customer1"}
    assert move.emits is not None and move.emits.data["previous"] == status.value


@pytest.mark.parametrize(
    "status", [OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.REJECTED]
)
def test_a_shipped_or_finished_order_cannot_be_cancelled(status: OrderStatus) -> None:
    o = order(status)
    with pytest.raises(Conflict):
        ordering.cancel(o.order_id, o, "customer1", False, "late")


def test_another_customer_is_told_the_order_does_not_exist() -> None:
    o = order(OrderStatus.PENDING)
    with pytest.raises(NotFound):
        ordering.cancel(o.order_id, o, "someone-else", False, "x")
    with pytest.raises(NotFound):
        ordering.cancel(uuid.uuid4(), None, "customer1", False, "x")


def test_the_owner_of_its_customer_id_cancels_an_order_an_admin_placed() -> None:
    o = order(OrderStatus.RESERVED)
    placed_by_admin = dataclasses.replace(o, principal="ops")
    assert ordering.cancel(o.order_id, placed_by_admin, "customer1", False, "x", owner="customer1")
    with pytest.raises(NotFound):
        ordering.cancel(o.order_id, placed_by_admin, "customer1", False, "x", owner="other")


def test_an_admin_cancels_anyone_s_order() -> None:
    o = order(OrderStatus.PAID)
    assert ordering.cancel(o.order_id, o, "ops", True, "fraud").moves[0].detail == {
        "reason": "fraud",
        "by": "ops",
    }
