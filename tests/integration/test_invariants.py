"""The after-run checks of `make chaos` (cli/invariants.py) against the real broker and
database: a message sent twice for one (order, status) counts as a duplicate effect, a
redelivered one does not; stock still held for a finished order is a stock error."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters import audit, audit_effects
from adapters.kafka import client_options
from cli.invariants import AUDITED_TOPICS, check, end_offsets
from core import registry
from core.settings import Settings
from domain.events import Envelope, Topic, new_event
from domain.ids import uuid7
from domain.inventory import ReserveRequest
from tests.integration.conftest import Api, scratch_order


async def _send(bootstrap: str, events: list[Envelope]) -> None:
    producer = AIOKafkaProducer(
        **client_options(), bootstrap_servers=bootstrap, enable_idempotence=True
    )
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                Topic.NOTIFICATION_SEND, value=e.to_json(), key=str(e.order_id).encode()
            )
    finally:
        await producer.stop()


def _sent(oid: uuid.UUID, status: str) -> Envelope:
    return new_event("NotificationSent", oid, customerId="c-inv", channel="email", status=status)


def test_a_message_sent_twice_is_a_duplicate_effect_and_a_redelivery_is_not(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka_bootstrap
    start = asyncio.run(end_offsets(bootstrap, *AUDITED_TOPICS))
    twice, redelivered = uuid7(), uuid7()
    once = _sent(redelivered, "PAID")
    events = [_sent(twice, "PAID"), _sent(twice, "PAID"), once, once, _sent(twice, "SHIPPED")]
    asyncio.run(_send(bootstrap, events))
    ids = [str(twice), str(redelivered)]
    verdict = check(settings.database_url, ids, {}, start, bootstrap)
    assert verdict.duplicates_effects == 1, verdict.details
    assert f"message ('{twice}', 'PAID') sent by 2 distinct events" in verdict.details
    assert verdict.double_charged == 0


def test_stock_held_for_a_delivered_order_is_reported(
    settings: Settings, pg: Any, ray_cluster: Any, api: Api
) -> None:
    """A DELIVERED order's stock has left (COMMITTED); one still HELD is reported once the
    settle time is over. (The shard's sweep commits such a hold 5 s after the order's last
    change: this order's is dated an hour ahead, so the audit is what finds it.)"""
    sku = "SKU-88"
    api.set_available(sku, 3)
    oid = scratch_order(pg, "c-inv", "DELIVERED", [(sku, 1)])
    pg.execute("UPDATE orders SET updated_at = now() + interval '1 hour' WHERE id = %s", (oid,))
    index = registry.shard_of(sku, settings.inventory_shards)
    shard = ray_cluster.get_actor(registry.inventory_shard(index))
    request = ReserveRequest(oid, "c-inv", "c-inv", [(sku, 1)])
    assert ray_cluster.get(shard.reserve_batch.remote([request])) == [True]
    try:
        start = asyncio.run(end_offsets(settings.kafka_bootstrap, *AUDITED_TOPICS))
        verdict = check(
            settings.database_url, [str(oid)], {}, start, settings.kafka_bootstrap, settle_s=1.0
        )
        assert verdict.oversold == 1, verdict.details
        assert any("stock still held for a finished order" in d for d in verdict.details)
    finally:
        ray_cluster.get(shard.release_batch.remote([oid]))
    assert api.stock(sku)["available"] == 3


def test_a_delivered_order_without_its_effects_is_reported(settings: Settings, pg: Any) -> None:
    """A DELIVERED order that took no stock, holds no charge and was never notified: the
    checks looked at duplicates only (and joined payments to orders), so it passed clean."""
    oid = scratch_order(pg, "c-inv", "DELIVERED", [("SKU-88", 1)])
    start = asyncio.run(end_offsets(settings.kafka_bootstrap, *AUDITED_TOPICS))
    verdict = check(
        settings.database_url, [str(oid)], {}, start, settings.kafka_bootstrap, settle_s=1.0
    )
    found = " ".join(verdict.details)
    for what in (
        "stock taken not as ordered",
        "paid without its charge",
        "delivered, not captured",
        "final status not notified",
        "no notification.send event",
        "shipment out of step",  # a delivered order without its shipment delivered
    ):
        assert what in found, verdict.details
    assert verdict.wrong_effects == 6 and not verdict.clean
    assert verdict.double_charged == 0  # no charge at all is not a double one


def test_the_audit_finds_a_paid_order_with_no_payment_row(pg: Any) -> None:
    """The scale benchmark's verdict (bench/scale_report.py) relies on this check alone; it
    joined payments to orders, so an order paid without any payment row never showed."""
    oid = scratch_order(pg, "c-inv", "DELIVERED", [("SKU-88", 1)])
    bad = audit.charge_mismatches(pg, [str(oid)], ["AUTHORIZED", "CAPTURED"], ["DELIVERED"])
    assert [(str(b["order_id"]), b["status"]) for b in bad] == [(str(oid), None)]


def test_an_unpaid_order_with_a_shipment_is_reported(pg: Any) -> None:
    """`make chaos` kills the shipping actor, yet nothing compared shipments with orders."""
    oid = scratch_order(pg, "c-inv", "DECLINED", [("SKU-88", 1)])
    pg.execute(
        "INSERT INTO shipments (order_id, tracking, status) VALUES (%s, 'T-INV', 'CREATED')",
        (oid,),
    )
    bad = audit_effects.shipments_out_of_step(pg, [str(oid)])
    assert [(str(b["order_id"]), b["shipment"]) for b in bad] == [(str(oid), "CREATED")]
