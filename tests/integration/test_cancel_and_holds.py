"""Cancel before and after shipping; reservation holds that expire; stock a finished order
still held is given back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import registry
from core.settings import Settings
from domain.events import Envelope, Topic, new_event
from domain.inventory import ReserveRequest
from tests.integration.conftest import (
    Api,
    publish_in_one_batch,
    scratch_order,
    wait_breaker_admits,
    wait_until,
)


def _payment(pg: Any, order_id: str) -> str | None:
    row = pg.execute("SELECT status FROM payments WHERE order_id = %s", (order_id,)).fetchone()
    return None if row is None else str(row["status"])


def _shipment(pg: Any, order_id: str) -> str | None:
    row = pg.execute("SELECT status FROM shipments WHERE order_id = %s", (order_id,)).fetchone()
    return None if row is None else str(row["status"])


def test_cancel_while_paid_returns_stock_and_money(api: Api, customer: str, pg: Any) -> None:
    sku = "SKU-95"
    api.set_available(sku, 8)
    api.fault("shipping-hold", True, customer)  # keep the parcel in the warehouse
    try:
        order_id = api.place_ok(customer, [(sku, 3)])
        api.wait_status(customer, order_id, "PAID")
        # PAID comes before the shipping stage creates the (held) shipment: wait for it
        wait_until(lambda: _shipment(pg, order_id) == "CREATED", what="shipment created")
        assert api.stock(sku)["available"] == 5
        resp = api.http.post(f"/api/orders/{order_id}/cancel", headers=api.headers(customer))
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "CANCELLED"
    finally:
        api.fault("shipping-hold", False, customer)
    wait_until(lambda: _payment(pg, order_id) == "REFUNDED", what="refund after cancel")
    wait_until(lambda: api.stock(sku)["available"] == 8, what="stock back after cancel")
    wait_until(
        lambda: _shipment(pg, order_id) == "CANCELLED",
        what="held shipment cancelled, never shipped",
    )
    order = api.order(customer, order_id)
    assert order["status"] == "CANCELLED" and order["reason"] == "cancelled by user"
    again = api.http.post(f"/api/orders/{order_id}/cancel", headers=api.headers(customer))
    assert again.status_code == 409


def test_cancel_after_shipping_is_409(api: Api, customer: str) -> None:
    order_id = api.place_ok(customer, [("SKU-3", 1)])
    api.wait_status(customer, order_id, "SHIPPED", "DELIVERED")
    resp = api.http.post(f"/api/orders/{order_id}/cancel", headers=api.headers(customer))
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "conflict"
    assert api.order(customer, order_id)["status"] in ("SHIPPED", "DELIVERED")


def test_unpaid_hold_expires_cancels_and_returns_stock(
    api: Api,
    customer: str,
    pg: Any,
    settings: Settings,
    ray_cluster: Any,
) -> None:
    sku = "SKU-96"
    api.set_available(sku, 4)
    api.fault("payment-provider", True)  # payment cannot happen: the hold stays unpaid
    try:
        order_id = api.place_ok(customer, [(sku, 4)])
        api.wait_status(customer, order_id, "RESERVED")
        assert api.stock(sku)["available"] == 0
        shard = ray_cluster.get_actor(
            registry.inventory_shard(registry.shard_of(sku, settings.inventory_shards))
        )
        later = datetime.now(UTC) + timedelta(seconds=settings.hold_ttl_s + 1)
        assert ray_cluster.get(shard.expire_holds.remote(later)) >= 1
        order = api.wait_status(customer, order_id, "CANCELLED")
    finally:
        api.fault("payment-provider", False)
        wait_breaker_admits(api)
    assert order["reason"] == "reservation hold expired before payment"
    wait_until(lambda: api.stock(sku)["available"] == 4, what="expired hold released")
    assert _payment(pg, order_id) is None  # never charged, also after the provider recovers


def _shard(ray_cluster: Any, settings: Settings, sku: str) -> Any:
    index = registry.shard_of(sku, settings.inventory_shards)
    return ray_cluster.get_actor(registry.inventory_shard(index))


def test_stock_still_held_for_a_finished_order_is_given_back(
    api: Api, customer: str, pg: Any, settings: Settings, ray_cluster: Any
) -> None:
    """A member that reserved across shards and then refused the order (or saw it cancelled)
    releases the other shards' part after its commit; stopped in between, its redelivery is
    claimed already and releases nothing. This is the state it leaves: a REJECTED order with a
    HELD reservation on a shard. The shard's sweep gives it back."""
    sku = "SKU-93"
    api.set_available(sku, 5)
    oid = scratch_order(pg, customer, "REJECTED", [(sku, 2)])
    shard = _shard(ray_cluster, settings, sku)
    request = ReserveRequest(oid, customer, customer, [(sku, 2)])
    assert ray_cluster.get(shard.reserve_batch.remote([request])) == [True]  # held
    wait_until(lambda: api.stock(sku)["available"] == 5, timeout=20, what="the hold given back")
    row = pg.execute("SELECT state FROM reservations WHERE order_id = %s", (oid,)).fetchone()
    assert row is not None and row["state"] == "RELEASED"
    assert not pg.execute("SELECT 1 FROM reservation_holds WHERE order_id = %s", (oid,)).fetchall()


def _created(oid: uuid.UUID, customer: str, sku: str, qty: int) -> Envelope:
    return new_event(
        "OrderCreated",
        oid,
        customerId=customer,
        principal=customer,
        items=[{"sku": sku, "qty": qty, "unitPrice": "1.00"}],
        total=f"{qty}.00",
        currency="USD",
        paymentMethod="pm_card_visa",
    )


def test_an_order_cancelled_before_its_event_came_takes_no_stock(
    api: Api, customer: str, pg: Any, settings: Settings
) -> None:
    """An order cancelled while PENDING (the inventory group behind) once reserved anyway and
    gave the stock back after the commit, so the order after it in the same batch found the
    last units taken and was REJECTED. Both events come in one record batch."""
    sku = "SKU-89"
    api.set_available(sku, 2)
    gone = scratch_order(pg, customer, "CANCELLED", [(sku, 2)])
    waiting = scratch_order(pg, customer, "PENDING", [(sku, 2)])
    events = [_created(gone, customer, sku, 2), _created(waiting, customer, sku, 2)]
    asyncio.run(publish_in_one_batch(settings.kafka_bootstrap, Topic.ORDER_CREATED, events))
    order = api.wait_status(
        customer, str(waiting), "REJECTED", "RESERVED", "PAID", "SHIPPED", "DELIVERED"
    )
    assert order["status"] != "REJECTED", order  # decided, and the stock was still there
    held = pg.execute("SELECT count(*) AS n FROM reservations WHERE order_id = %s", (gone,))
    assert held.fetchone() == {"n": 0}
    assert pg.execute("SELECT status FROM orders WHERE id = %s", (gone,)).fetchone() == {
        "status": "CANCELLED"
    }


def test_an_event_with_a_sku_on_two_lines_reserves_it_once_with_both_quantities(
    api: Api, customer: str, pg: Any, settings: Settings
) -> None:
    """The gateway merges a SKU's lines before it stores an order; an `order.created` from
    elsewhere (an edited dead letter replayed) once wrote a reservation row per line, and the
    second broke the table's key (order, SKU): the event went to the dead-letter topic and the
    order stayed PENDING."""
    sku = "SKU-83"
    api.set_available(sku, 3)
    oid = scratch_order(pg, customer, "PENDING", [(sku, 3)])
    event = _created(oid, customer, sku, 3)
    event.data["items"] = [{"sku": sku, "qty": q, "unitPrice": "1.00"} for q in (1, 2)]
    asyncio.run(publish_in_one_batch(settings.kafka_bootstrap, Topic.ORDER_CREATED, [event]))
    order = api.wait_status(
        customer, str(oid), "REJECTED", "RESERVED", "PAID", "SHIPPED", "DELIVERED"
    )
    assert order["status"] != "REJECTED", order  # the 3 units were there for 1 + 2
    rows = pg.execute("SELECT sku, qty FROM reservations WHERE order_id = %s", (oid,)).fetchall()
    assert rows == [{"sku": sku, "qty": 3}]


@pytest.mark.parametrize("then", ["a change", "nothing"])
def test_a_shard_reads_its_stock_again_after_a_failed_transaction(
    api: Api, customer: str, pg: Any, settings: Settings, ray_cluster: Any, then: str
) -> None:
    """A shard's memory follows a transaction only when its COMMIT answered; a COMMIT whose
    answer was lost (the connection cut) may have committed anyway, and memory would then
    disagree with Postgres until the actor restarted (later reservations refused by the
    table's CHECK, or stock never offered). So after any failed transaction the shard reads its
    stock again before its next change: here a reservation only the stock Postgres has can
    cover. With no change after the failure, what it shows (`snapshot`, which tests compare
    with Postgres) is read again too. Postgres gets a change memory did not take, then a
    transaction of the shard fails."""
    sku = "SKU-87"
    api.set_available(sku, 4)
    shard = _shard(ray_cluster, settings, sku)
    before = ray_cluster.get(shard.snapshot.remote(sku))
    pg.execute("UPDATE inventory SET on_hand = on_hand + 3 WHERE sku = %s", (sku,))
    oid = scratch_order(pg, customer, "RESERVED", [(sku, 6)])
    try:
        with pytest.raises(Exception, match="onHand must be at least 0"):
            ray_cluster.get(shard.set_stock.remote(sku, -1))
        if then == "a change":  # 4 available in the old memory, 7 in Postgres
            request = ReserveRequest(oid, customer, customer, [(sku, 6)])
            assert ray_cluster.get(shard.reserve_batch.remote([request])) == [True]
            ray_cluster.get(shard.release_batch.remote([oid]))
        after = ray_cluster.get(shard.snapshot.remote(sku))
        assert after == {"onHand": before["onHand"] + 3, "reserved": before["reserved"]}
    finally:
        api.set_available(sku, 4)


def test_an_admin_cancel_names_the_role_to_the_customer_and_the_admin_to_admins(
    api: Api, customer: str, pg: Any
) -> None:
    """The timeline stored the admin's sub and the reason 'cancelled by user', and the
    customer's own GET showed both."""
    order_id = scratch_order(pg, customer, "RESERVED")  # nothing moves it on by itself
    resp = api.http.post(f"/api/orders/{order_id}/cancel", headers=api.admin)
    assert resp.status_code == 202, resp.text
    seen = api.order(customer, str(order_id))
    assert seen["reason"] == "cancelled by an administrator"
    entry = [t for t in seen["timeline"] if t["status"] == "CANCELLED"]
    assert entry and entry[0]["detail"] == {"reason": "cancelled by an administrator"}
    by_admin = api.http.get(f"/api/orders/{order_id}", headers=api.admin).json()
    entry = [t for t in by_admin["timeline"] if t["status"] == "CANCELLED"]
    assert entry[0]["detail"]["by"] == "admin-tests"


def test_a_hold_row_left_by_code_from_before_migration_0011_is_removed(
    api: Api, customer: str, pg: Any
) -> None:
    """Code from before 0011, running while it migrated, closed reservations and left their
    copied hold rows: each counted against the principal's hold cap for good, and the sweep
    found the finished order again every run and closed nothing."""
    sku = "SKU-92"
    oid = scratch_order(pg, customer, "CANCELLED", [(sku, 1)])
    pg.execute(
        "INSERT INTO reservations (order_id, sku, customer_id, principal, qty, state, "
        "expires_at) VALUES (%s, %s, %s, %s, 1, 'RELEASED', now())",
        (oid, sku, customer, customer),
    )
    pg.execute(
        "INSERT INTO reservation_holds (order_id, sku, principal, qty, expires_at) "
        "VALUES (%s, %s, %s, 1, now())",
        (oid, sku, customer),
    )
    wait_until(
        lambda: (
            not pg.execute("SELECT 1 FROM reservation_holds WHERE order_id = %s", (oid,)).fetchall()
        ),
        timeout=30,
        what="the left-over hold row removed by the stranded-hold sweep",
    )


def test_a_cancel_waiting_on_a_busy_order_answers_503(
    api: Api, customer: str, settings: Settings
) -> None:
    """A stage whose transaction holds the order's row lock (waiting on a restarting shard, for
    instance) made a cancel hang for as long; now it waits 5 s, then answers 503."""
    import psycopg

    api.fault("shipping-hold", True, customer)
    try:
        order_id = api.place_ok(customer, [("SKU-7", 1)])
        api.wait_status(customer, order_id, "PAID")
        with psycopg.connect(settings.database_url) as other:
            other.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (order_id,))
            resp = api.http.post(
                f"/api/orders/{order_id}/cancel", headers=api.headers(customer), timeout=30
            )
            assert resp.status_code == 503, resp.text
            assert resp.headers.get("Retry-After")
            assert "being worked on" in resp.json()["error"]["message"]
        resp = api.http.post(f"/api/orders/{order_id}/cancel", headers=api.headers(customer))
        assert resp.status_code == 202, resp.text
    finally:
        api.fault("shipping-hold", False, customer)
