"""pybreaker guards Order → Payment: open circuit → 503 + Retry-After; in-flight orders wait and
complete once it closes, each charged once."""

from __future__ import annotations

from typing import Any

from core import registry
from core.settings import Settings
from tests.integration.conftest import Api, wait_breaker_admits, wait_until


def test_open_breaker_refuses_new_orders_and_in_flight_ones_resume(
    api: Api, customer: str, pg: Any, settings: Settings, ray_cluster: Any
) -> None:
    """While the circuit is open the payment member retries its batch (Unavailable); the
    shard's memory is not read again for it (a scan of every payment per retry, under the
    shard's lock): the provider refused before anything was sent to commit."""
    shard = ray_cluster.get_actor(
        registry.payment_shard(registry.shard_of(customer, settings.payment_shards))
    )
    reloads = ray_cluster.get(shard.health.remote())["reloads"]
    api.fault("payment-provider", True)
    accepted: list[str] = []
    try:

        def refused() -> Any:
            resp = api.place(customer, [("SKU-4", 1)])
            if resp.status_code == 202:
                accepted.append(resp.json()["orderId"])
                return None
            return resp

        resp = wait_until(
            refused, timeout=30, what="gateway to refuse while circuit is open", interval=0.3
        )
        assert resp.status_code == 503
        assert int(resp.headers["Retry-After"]) >= 1
        assert resp.json()["error"]["code"] == "unavailable"
        ready = api.http.get("/ready", headers=api.admin).json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["payments"]["breaker"] == "open"
        assert accepted, "orders accepted before the circuit opened are in flight"
        for oid in accepted:  # (the last may still be PENDING on a busy box: not paid, though)
            api.wait_status(customer, oid, "RESERVED", timeout=30)
            assert api.order(customer, oid)["status"] == "RESERVED"
        wait_until(
            lambda: "Unavailable" in str(ray_cluster.get(shard.health.remote())["lastError"]),
            timeout=30,
            what="the payment member to retry its batch while the circuit is open",
        )
        assert ray_cluster.get(shard.health.remote())["reloads"] == reloads
    finally:  # a failure above must not leave the circuit open for the tests after this one
        api.fault("payment-provider", False)
        wait_breaker_admits(api)
    for oid in accepted:
        api.wait_status(customer, oid, "DELIVERED", timeout=40)
    charges = pg.execute(
        "SELECT order_id, count(*) AS n FROM payments WHERE order_id = ANY(%s::uuid[]) "
        "GROUP BY order_id",
        (accepted,),
    ).fetchall()
    assert len(charges) == len(accepted) and all(r["n"] == 1 for r in charges)
    assert api.place(customer, [("SKU-4", 1)]).status_code == 202
