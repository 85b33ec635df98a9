"""Events that can never be handled go to their topic's dead-letter topic, whichever stage
reads them, and nothing else happens: an event for an order that does not exist (payment and
shipping pass it over no more than inventory did), and a shipment event without a known
step."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from core.settings import Settings
from domain.events import Envelope, Topic, new_event
from tests.integration.conftest import Api, publish_in_one_batch


def _phantom(kind: str, **data: Any) -> Envelope:
    return new_event(kind, uuid.uuid4(), customerId="c-poison", items=[], **data)


def _copies(seen: list[Any], event: Envelope) -> list[dict[str, bytes]]:
    """The headers of each dead letter of `event` seen so far."""
    return [dict(r.headers) for _, e, r in seen if e is not None and e.event_id == event.event_id]


def _dead_lettered(tap: Any, event: Envelope) -> dict[str, bytes]:
    tap.wait_for(
        lambda seen: bool(_copies(seen, event)), what=f"{event.type} dead-lettered", timeout=60
    )
    return _copies(tap.seen, event)[0]


def test_events_of_orders_that_do_not_exist_are_dead_lettered(
    api: Api, customer: str, kafka_tap: Any, pg: Any, settings: Settings
) -> None:
    cases = [
        (Topic.INVENTORY_RESERVED, "payment", _phantom("StockReserved")),
        (Topic.PAYMENT_AUTHORIZED, "shipping", _phantom("PaymentAuthorized", amount="1.00")),
    ]
    tap = kafka_tap(*(Topic.dlq(topic) for topic, _, _ in cases))
    for topic, _, event in cases:
        asyncio.run(publish_in_one_batch(settings.kafka_bootstrap, topic, [event]))
    for topic, group, event in cases:
        headers = _dead_lettered(tap, event)
        assert headers["dlq.source.topic"] == topic.encode()
        assert headers["dlq.group"] == group.encode()
        assert b"does not exist" in headers["dlq.reason"], headers
    phantoms = [str(e.order_id) for _, _, e in cases]
    for table in ("payments", "shipments"):
        rows = pg.execute(
            f"SELECT count(*) AS n FROM {table} WHERE order_id = ANY(%s::uuid[])",  # noqa: S608
            (phantoms,),
        ).fetchone()
        assert rows["n"] == 0, table
    api.wait_status(customer, api.place_ok(customer, [("SKU-6", 1)]), "DELIVERED")


def test_a_shipment_event_without_a_known_step_is_dead_lettered(
    kafka_tap: Any, settings: Settings
) -> None:
    event = _phantom("ShippingUpdated", shipmentStatus="LOST_IN_TRANSIT")
    tap = kafka_tap(Topic.dlq(Topic.SHIPPING_UPDATED))
    asyncio.run(publish_in_one_batch(settings.kafka_bootstrap, Topic.SHIPPING_UPDATED, [event]))

    def every_group(seen: list[Any]) -> bool:
        groups = {h.get("dlq.group") for h in _copies(seen, event)}
        return groups >= {b"inventory", b"payment", b"notification"}

    tap.wait_for(every_group, what="the bad step dead-lettered by each group", timeout=60)
