from __future__ import annotations

import pytest

from domain.errors import InvalidTransition
from domain.model import CANCELLABLE, TERMINAL, OrderStatus, can_transition, is_terminal, transition

S = OrderStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.RESERVED),
        (S.PENDING, S.REJECTED),
        (S.RESERVED, S.PAID),
        (S.RESERVED, S.DECLINED),
        (S.PAID, S.SHIPPED),
        (S.SHIPPED, S.DELIVERED),
        (S.PAID, S.REFUNDED),
        (S.PAID, S.CANCELLED),
        (S.RESERVED, S.CANCELLED),
        (S.PENDING, S.CANCELLED),
    ],
)
def test_happy_and_failure_moves_are_allowed(current: OrderStatus, target: OrderStatus) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_statuses_never_move_again(terminal: OrderStatus) -> None:
    assert is_terminal(terminal)
    for target in OrderStatus:
        assert not can_transition(terminal, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.PAID),
        (S.PENDING, S.SHIPPED),
        (S.RESERVED, S.SHIPPED),
        (S.SHIPPED, S.CANCELLED),
        (S.SHIPPED, S.REFUNDED),  # a shipped order's stock has left: nothing refunds it
        (S.PAID, S.RESERVED),
    ],
)
def test_skipping_or_going_back_is_rejected(current: OrderStatus, target: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        transition(current, target)


def test_only_unshipped_orders_are_cancellable() -> None:
    assert {S.PENDING, S.RESERVED, S.PAID} == CANCELLABLE
    assert S.SHIPPED not in CANCELLABLE
