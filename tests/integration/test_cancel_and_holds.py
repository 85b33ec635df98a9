"""Cancel before and after shipping; reservation holds that expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core import registry
from core.settings import Settings
from tests.integration.conftest import Api, wait_breaker_admits, wait_until


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
