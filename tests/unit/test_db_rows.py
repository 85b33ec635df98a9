"""One status row per order for `UPDATE … FROM unnest(…)`, which applies one row per target; one
envelope per claimed event for the stage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from adapters.uow import first_of_each, last_status_per_order
from domain.decision import Applied, Move
from domain.events import new_event
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


def test_a_claimed_event_reaches_the_stage_once_in_batch_order() -> None:
    a, b, c = (new_event("OrderCreated", uuid.uuid4()) for _ in range(3))
    claimed = {a.event_id, b.event_id}  # c was claimed before: not new
    assert first_of_each(claimed, [b, a, c, b, a]) == [b, a]
    assert claimed == {a.event_id, b.event_id}  # the caller's set is left as it was
