"""One status row per order for `UPDATE … FROM unnest(…)`, which applies one row per target."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from adapters.uow import last_status_per_order
from domain.decision import Applied, Move
from domain.model import OrderStatus


def _done(oid: uuid.UUID, target: OrderStatus, reason: str | None = None) -> Applied:
    detail = {"reason": reason} if reason else None
    return Applied(Move(oid, target, "E", detail), None, True)


def test_an_order_moved_twice_keeps_its_last_status_and_its_last_reason() -> None:
    a, b, at = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    rows = last_status_per_order(
        [
            _done(a, OrderStatus.RESERVED),
            _done(b, OrderStatus.REJECTED, "out of stock"),
            _done(a, OrderStatus.CANCELLED, "hold expired"),
            _done(a, OrderStatus.REFUNDED),
        ],
        at,
    )
    assert sorted(rows, key=lambda r: r[0]) == [
        ("REFUNDED", "hold expired", at, a),
        ("REJECTED", "out of stock", at, b),
    ]
