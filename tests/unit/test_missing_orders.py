"""The stages that settle a payment or notify read whether the event's order exists in a
statement they run anyway, and an event whose order does not exist is poison (the dead-letter
topic), raised before the stage writes anything: never passed over as a no-op. The statements
themselves run against Postgres in tests/integration/test_poison_events.py."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from actors import notification, payment
from adapters.payments import Settlement
from consumers.base import PoisonMessage
from domain.events import Envelope, new_event
from domain.payment import CAPTURED, REFUNDED

REAL, PHANTOM = uuid.UUID(int=1), uuid.UUID(int=2)


class _Tx:
    conn = None  # the adapters' functions are replaced: no statement runs


def _events(kind: str, **data: Any) -> list[Envelope]:
    return [new_event(kind, oid, customerId="c-1", **data) for oid in (REAL, PHANTOM)]


def _reason(event: Envelope) -> str:
    return f"order {event.order_id} of {event.type} {event.event_id} does not exist"


@pytest.mark.parametrize(
    ("target", "kind", "data"),
    [
        (REFUNDED, "OrderCancelled", {"reason": "x"}),
        (REFUNDED, "ShippingUpdated", {"shipmentStatus": "FAILED"}),
        (CAPTURED, "ShippingUpdated", {"shipmentStatus": "DELIVERED"}),
    ],
)
def test_a_refund_or_capture_of_an_order_that_does_not_exist_is_poison(
    monkeypatch: pytest.MonkeyPatch, target: str, kind: str, data: dict[str, str]
) -> None:
    async def settle(conn: Any, order_ids: list[uuid.UUID], to: str) -> Settlement:
        assert to == target
        return Settlement([(REAL, "c-1", Decimal("2"))], {PHANTOM} & set(order_ids))

    monkeypatch.setattr("adapters.payments.settle", settle)
    events = _events(kind, **data)
    stage = payment._Settle(target, f"payment-{target.lower()}")
    with pytest.raises(PoisonMessage, match=_reason(events[1])):
        asyncio.run(stage.decide(_Tx(), events, {}))  # type: ignore[arg-type]
    assert stage.settled == [] and stage.decision.events == []  # nothing of the batch kept
    alone = payment._Settle(target, f"payment-{target.lower()}")  # the loop's rerun of the other
    asyncio.run(alone.decide(_Tx(), events[:1], {}))  # type: ignore[arg-type]
    assert alone.settled == [(REAL, "c-1", Decimal("2"))]
    refunded = ["PaymentRefunded"] if target == REFUNDED else []
    assert [e.type for e in alone.decision.events] == refunded


def test_a_notification_of_an_order_that_does_not_exist_is_poison_and_records_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded: list[Any] = []

    async def statuses(conn: Any, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        return {REAL: "CANCELLED"}  # the statement the stage runs anyway: no row, no order

    async def record(conn: Any, rows: Any) -> set[tuple[uuid.UUID, str]]:
        recorded.extend(rows)
        return set()

    monkeypatch.setattr("adapters.notifications.statuses", statuses)
    monkeypatch.setattr("adapters.notifications.record", record)
    events = _events("OrderCancelled", reason="x")
    with pytest.raises(PoisonMessage, match=_reason(events[1])):
        asyncio.run(notification._Notify().decide(_Tx(), events, {}))  # type: ignore[arg-type]
    assert recorded == []
    asyncio.run(notification._Notify().decide(_Tx(), events[:1], {}))  # type: ignore[arg-type]
    assert [(e.order_id, m.status) for e, m in recorded] == [(REAL, "CANCELLED")]
