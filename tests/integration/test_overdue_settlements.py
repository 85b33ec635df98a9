"""What a dead-lettered settling event leaves behind is settled by the owners' sweeps: stock still
held for a shipped order is committed (its `shipping.updated` never reached the inventory
group), an authorization still open on a cancelled or refunded order is refunded and on a
delivered one captured (its `order.cancelled` or delivery never reached the payment group). The
money stayed in the customer's credit exposure for good, declining their later orders; the held
stock counted against the principal's open-hold cap and kept `onHand` raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core import registry
from core.settings import Settings
from domain.inventory import ReserveRequest
from tests.integration.conftest import Api, scratch_order, wait_until


def _state(pg: Any, table: str, order_id: Any) -> str | None:
    column = "state" if table == "reservations" else "status"
    row = pg.execute(
        f"SELECT {column} AS s FROM {table} WHERE order_id = %s",  # noqa: S608 (a constant)
        (order_id,),
    ).fetchone()
    return None if row is None else str(row["s"])


def test_stock_still_held_for_a_shipped_order_is_committed(
    api: Api, customer: str, pg: Any, settings: Settings, ray_cluster: Any
) -> None:
    sku = "SKU-94"
    before = api.set_available(sku, 5)
    oid = scratch_order(pg, customer, "SHIPPED", [(sku, 2)])
    shard = ray_cluster.get_actor(
        registry.inventory_shard(registry.shard_of(sku, settings.inventory_shards))
    )
    request = ReserveRequest(oid, customer, customer, [(sku, 2)])
    assert ray_cluster.get(shard.reserve_batch.remote([request])) == [True]  # held
    wait_until(
        lambda: _state(pg, "reservations", oid) == "COMMITTED",
        timeout=20,
        what="the shipped order's hold committed by the sweep",
    )
    after = api.stock(sku)
    assert after["onHand"] == before["onHand"] - 2 and after["available"] == 3
    assert not pg.execute("SELECT 1 FROM reservation_holds WHERE order_id = %s", (oid,)).fetchall()


def test_an_open_authorization_of_an_ended_order_is_refunded_or_captured(
    customer: str, pg: Any, settings: Settings, ray_cluster: Any
) -> None:
    cancelled = scratch_order(pg, customer, "CANCELLED")
    delivered = scratch_order(pg, customer, "DELIVERED")
    paid = scratch_order(pg, customer, "PAID")  # still in flight: left alone
    for oid in (cancelled, delivered, paid):
        pg.execute(
            "INSERT INTO payments (order_id, customer_id, amount, status) "
            "VALUES (%s, %s, 5, 'AUTHORIZED')",
            (oid, customer),
        )
    # changed just now: the shard's own sweep (60 s after the order's end) leaves them to the call
    pg.execute(
        "UPDATE orders SET updated_at = now() WHERE id = ANY(%s)", ([cancelled, delivered, paid],)
    )
    shard = ray_cluster.get_actor(
        registry.payment_shard(registry.shard_of(customer, settings.payment_shards))
    )
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert ray_cluster.get(shard.settle_overdue.remote(later)) >= 2
    assert _state(pg, "payments", cancelled) == "REFUNDED"
    assert _state(pg, "payments", delivered) == "CAPTURED"
    assert _state(pg, "payments", paid) == "AUTHORIZED"
    ray_cluster.get(shard.settle_overdue.remote(later))  # again: each is settled once
    assert [_state(pg, "payments", o) for o in (cancelled, delivered, paid)] == [
        "REFUNDED",
        "CAPTURED",
        "AUTHORIZED",
    ]
