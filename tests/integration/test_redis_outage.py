"""Redis holds nothing an order needs to go on (rate limits, idempotency's fast path, the
payment breaker's shared state, dev fault flags, live status): while it does not answer, orders
are accepted and carried to DELIVERED, and a payment shard restarted meanwhile comes back."""

from __future__ import annotations

from typing import Any

import pytest

from core import registry
from core.settings import Settings
from tests.integration.conftest import Api, paused_redis, wait_until


@pytest.mark.timeout(600)  # its waits add up to 180 s and more on a slow box
def test_an_order_is_delivered_and_a_payment_shard_restarts_while_redis_does_not_answer(
    api: Api, customer: str, settings: Settings, ray_cluster: Any
) -> None:
    """Before: every stage's Redis read waited without end (the payment breaker's state inside
    the payment transaction, the shipping fault flags inside the shipping one), and a payment
    shard restarted during the outage raised in `__init__` (pybreaker writes its keys there)
    and stayed dead, since Ray does not restart an actor whose `__init__` raised."""
    name = registry.payment_shard(registry.shard_of(customer, settings.payment_shards))
    before = ray_cluster.get(ray_cluster.get_actor(name).health.remote())
    with paused_redis(api):
        ray_cluster.kill(ray_cluster.get_actor(name), no_restart=False)
        order_id = api.place_ok(customer, [("SKU-4", 1)])
        api.wait_status(customer, order_id, "DELIVERED", timeout=120)
        health = wait_until(
            lambda: ray_cluster.get(ray_cluster.get_actor(name).health.remote(), timeout=10),
            timeout=60,
            what=f"{name} to answer again",
        )
    assert health["pid"] != before["pid"]
