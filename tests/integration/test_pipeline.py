"""The whole flow on the real stack: inventory, payment, shipping, notification over Kafka."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka import client_options
from consumers import routes
from core.registry import shard_of
from core.settings import Settings
from domain.events import Topic
from tests.integration.conftest import Api, held, wait_until


def _held(pg: Any, order_id: str) -> int:
    return held(pg, [order_id])


def _charged(pg: Any, order_id: str) -> list[str]:
    return [
        r["status"]
        for r in pg.execute("SELECT status FROM payments WHERE order_id = %s", (order_id,))
    ]


def test_order_walks_to_delivered_through_every_seed_topic_in_order(
    api: Api,
    customer: str,
    pg: Any,
    kafka_tap: Any,
) -> None:
    tap = kafka_tap(*Topic.SEED)
    sku = "SKU-90"
    api.set_available(sku, 10)
    before = api.stock(sku)
    order_id = api.place_ok(customer, [(sku, 3)])
    order = api.wait_status(customer, order_id, "DELIVERED")
    assert [t["status"] for t in order["timeline"]] == [
        "PENDING",
        "RESERVED",
        "PAID",
        "PAID",
        "SHIPPED",
        "DELIVERED",
    ]
    tap.wait_for(
        lambda _: len([e for t, e in tap.events(order_id) if t == Topic.NOTIFICATION_SEND]) >= 4,
        what="notifications for RESERVED, PAID, SHIPPED, DELIVERED",
    )
    flow = tap.events(order_id)
    firsts: dict[str, int] = {}
    for i, (topic, _) in enumerate(flow):
        firsts.setdefault(topic, i)
    expected = [
        Topic.ORDER_CREATED,
        Topic.INVENTORY_RESERVED,
        Topic.PAYMENT_AUTHORIZED,
        Topic.SHIPPING_UPDATED,
    ]
    assert all(t in firsts for t in expected), firsts
    stamps = {t: e.occurred_at for t, e in reversed(flow)}  # first occurrence per topic
    assert [stamps[t] for t in expected] == sorted(stamps[t] for t in expected)
    shipping = [e.data["shipmentStatus"] for t, e in flow if t == Topic.SHIPPING_UPDATED]
    assert shipping == ["CREATED", "SHIPPED", "DELIVERED"]
    notified = sorted(e.data["status"] for t, e in flow if t == Topic.NOTIFICATION_SEND)
    assert notified == ["DELIVERED", "PAID", "RESERVED", "SHIPPED"]
    # Inventory's commit (on SHIPPED) and payment's capture (on DELIVERED) are each stage's own
    # reaction to shipping.updated, in its own consumer group: either may land after the
    # order's status does, so the test waits for them rather than reading them beside it.
    wait_until(  # shipped: on-hand drops for good, nothing stays reserved
        lambda: (
            (after := api.stock(sku))["onHand"] == before["onHand"] - 3
            and after["reserved"] == before["reserved"]
        ),
        what="stock committed on shipment",
    )
    wait_until(
        lambda: _charged(pg, order_id) == ["CAPTURED"],
        what="the charge captured on delivery",
    )


def test_out_of_stock_is_rejected_on_inventory_rejected(
    api: Api,
    customer: str,
    pg: Any,
    kafka_tap: Any,
) -> None:
    tap = kafka_tap(Topic.INVENTORY_REJECTED)
    sku = "SKU-91"
    api.set_available(sku, 1)
    order_id = api.place_ok(customer, [(sku, 2)])
    order = api.wait_status(customer, order_id, "REJECTED")
    assert order["reason"] == "out of stock"
    tap.wait_for(lambda _: bool(tap.events(order_id)), what="inventory.rejected")
    assert _held(pg, order_id) == 0 and _charged(pg, order_id) == []
    assert api.stock(sku)["available"] == 1


def test_declined_payment_returns_the_stock(
    api: Api,
    customer: str,
    pg: Any,
    kafka_tap: Any,
) -> None:
    tap = kafka_tap(Topic.PAYMENT_DECLINED)
    sku = "SKU-92"
    api.set_available(sku, 5)
    order_id = api.place_ok(customer, [(sku, 4)], paymentMethod="pm_card_chargeDeclined")
    order = api.wait_status(customer, order_id, "DECLINED")
    assert order["reason"] == "card_declined"
    tap.wait_for(lambda _: bool(tap.events(order_id)), what="payment.declined")
    wait_until(lambda: api.stock(sku)["available"] == 5, what="stock released after decline")
    assert _held(pg, order_id) == 0
    assert _charged(pg, order_id) == ["DECLINED"]


def test_insufficient_funds_and_credit_limit_decline(
    api: Api,
    customer: str,
    settings: Settings,
) -> None:
    oid = api.place_ok(customer, [("SKU-2", 1)], paymentMethod="pm_card_insufficientFunds")
    assert api.wait_status(customer, oid, "DECLINED")["reason"] == "insufficient_funds"
    # over the credit limit: 50 lines × 1000 units (well-stocked SKUs, ≥ 5.00 each)
    big = [(f"SKU-{i}", 1000) for i in range(1, 51)]
    assert Decimal(50 * 1000 * 5) > Decimal(str(settings.credit_limit))
    oid = api.place_ok(customer, big)
    assert api.wait_status(customer, oid, "DECLINED")["reason"] == "credit_limit_exceeded"


def test_multi_sku_order_with_one_sku_short_holds_nothing(
    api: Api,
    customer: str,
    pg: Any,
    settings: Settings,
) -> None:
    # two SKUs owned by different inventory shards (make test runs two; with one shard, both
    # SKUs are on it and the rule is the same)
    a = next(
        f"SKU-{i}" for i in range(93, 101) if shard_of(f"SKU-{i}", settings.inventory_shards) == 0
    )
    b = next(
        f"SKU-{i}"
        for i in range(93, 101)
        if f"SKU-{i}" != a
        and (settings.inventory_shards == 1 or shard_of(f"SKU-{i}", settings.inventory_shards) != 0)
    )
    api.set_available(a, 10)
    api.set_available(b, 1)
    order_id = api.place_ok(customer, [(a, 5), (b, 2)])
    api.wait_status(customer, order_id, "REJECTED")
    wait_until(
        lambda: api.stock(a)["available"] == 10 and _held(pg, order_id) == 0,
        what="compensation released the shard that had reserved",
    )
    assert api.stock(b)["available"] == 1
    states = {
        r["state"]
        for r in pg.execute("SELECT state FROM reservations WHERE order_id = %s", (order_id,))
    }
    assert states <= {"RELEASED"}


def test_shipping_failure_refunds_and_returns_stock(
    api: Api,
    customer: str,
    pg: Any,
    kafka_tap: Any,
) -> None:
    tap = kafka_tap(Topic.PAYMENT_REFUNDED, Topic.SHIPPING_UPDATED)
    sku = "SKU-94"
    api.set_available(sku, 6)
    api.fault("shipping-fail", True, customer)
    try:
        order_id = api.place_ok(customer, [(sku, 2)])
        order = api.wait_status(customer, order_id, "REFUNDED")
    finally:
        api.fault("shipping-fail", False, customer)
    assert "refunded" in order["reason"]
    wait_until(lambda: _charged(pg, order_id) == ["REFUNDED"], what="payment refunded")
    wait_until(lambda: api.stock(sku)["available"] == 6, what="stock back after failure")
    tap.wait_for(
        lambda _: any(t == Topic.PAYMENT_REFUNDED for t, _ in tap.events(order_id)),
        what="payment.refunded",
    )
    statuses = [
        e.data["shipmentStatus"] for t, e in tap.events(order_id) if t == Topic.SHIPPING_UPDATED
    ]
    assert statuses == ["CREATED", "FAILED"]


def test_every_group_commits_what_it_handled_once_idle(
    api: Api, customer: str, settings: Settings
) -> None:
    """Offsets are committed in the background, never past a record not handled; once a group
    has nothing to do it has committed everything it took (a restart redelivers nothing)."""
    api.set_available("SKU-91", 10)
    order_id = api.place_ok(customer, [("SKU-91", 1)])
    api.wait_status(customer, order_id, "DELIVERED")
    ends = asyncio.run(_end_offsets(settings))  # every event of the order is in by now

    behind: list[str] = []

    def caught_up() -> bool:
        behind[:] = asyncio.run(_behind(settings, ends))
        return not behind

    try:
        wait_until(caught_up, timeout=30, what="each group's committed offsets at the ends")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; behind: {behind}") from None


async def _end_offsets(settings: Settings) -> dict[str, dict[TopicPartition, int]]:
    topics = {t for group in routes.GROUPS for t in routes.topics(group)}
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=settings.kafka_bootstrap, **client_options(settings)
    )
    await consumer.start()  # subscribed without a group: it has every topic's metadata
    try:
        ends: dict[str, dict[TopicPartition, int]] = {}
        for group in routes.GROUPS:
            tps = [
                TopicPartition(t, p)
                for t in routes.topics(group)
                for p in consumer.partitions_for_topic(t) or ()
            ]
            assert tps, f"no partitions known for the topics of {group}"
            ends[group] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def _behind(settings: Settings, ends: dict[str, dict[TopicPartition, int]]) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings)
    )
    await admin.start()
    try:
        behind = []
        for group, end in ends.items():
            committed = await admin.list_consumer_group_offsets(group)
            for tp, offset in end.items():
                at = committed[tp].offset if tp in committed else None
                if offset > 0 and (at is None or at < offset):
                    behind.append(f"{group} {tp.topic}/{tp.partition}: {at} < {offset}")
        return behind
    finally:
        await admin.close()
