"""Fault flags (dev's fault injection) against the stack's real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.provider import FAULT_KEY
from adapters.redis_clients import async_client
from core.settings import Settings
from domain.errors import Conflict
from serve_app.faults import FaultInjector, FaultSpec
from tests.integration.conftest import Api, wait_until


def test_a_flag_left_from_dev_is_cleared_under_another_app_env(
    settings: Settings, rds: Any, customer: str
) -> None:
    """A flag set in dev lives an hour in Redis and the stages obey it under any APP_ENV: an
    admin of a prod stack must be able to clear it (it answered 409), not to set one."""
    key = f"fault:shipping-hold:{customer}"
    rds.set(key, "1", ex=60)

    async def as_prod(spec: FaultSpec) -> None:
        client = async_client(settings.redis_url)
        try:
            await FaultInjector(client, "prod").set(spec)
        finally:
            await client.aclose()

    off = FaultSpec.model_validate(
        {"fault": "shipping-hold", "enabled": False, "customerId": customer}
    )
    asyncio.run(as_prod(off))
    assert rds.get(key) is None
    with pytest.raises(Conflict):
        spec = {"fault": "shipping-hold", "enabled": True, "customerId": customer}
        asyncio.run(as_prod(FaultSpec.model_validate(spec)))
    assert rds.get(key) is None


def test_payment_provider_takes_no_customer_id(api: Api, rds: Any, customer: str) -> None:
    """It is global: a customerId was echoed back as if the fault were that customer's."""
    body = {"fault": "payment-provider", "enabled": True, "customerId": customer}
    try:
        resp = api.http.post("/api/admin/faults", json=body, headers=api.admin)
    finally:
        was_set = rds.delete(FAULT_KEY)  # payments down for every test after this one
    assert (resp.status_code, was_set) == (422, 0), resp.text
    assert "customerId" in resp.json()["error"]["message"]


def test_a_fault_names_its_customer_by_the_wire_name_only(
    api: Api, rds: Any, customer: str
) -> None:
    """`customer_id` (the Python name) was read as `customerId`: an unknown field that acted."""
    key = f"fault:shipping-hold:{customer}"
    body = {"fault": "shipping-hold", "enabled": True, "customer_id": customer}
    try:
        resp = api.http.post("/api/admin/faults", json=body, headers=api.admin)
    finally:
        was_set = rds.delete(key)
    assert (resp.status_code, was_set) == (422, 0), resp.text
    assert resp.json()["error"]["code"] == "validation_error"


def _gone(ray: Any, handle: Any) -> bool:
    """True once calls to the actor behind `handle` fail because it died."""
    from ray.exceptions import GetTimeoutError, RayActorError

    try:
        ray.get(handle.__ray_ready__.remote(), timeout=1)
    except RayActorError:
        return True
    except GetTimeoutError:
        pass  # busy: its 3600 s call still runs
    return False


def test_a_stock_write_to_a_dead_or_silent_shard_is_a_503(
    ray_cluster: Any, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """The gateway cached each shard's handle for good: after the shard was killed and
    replaced by name, every `PUT /api/inventory/{sku}` answered 500; a shard that never
    answered (restarting while Postgres is down) held the request without limit."""
    from domain.errors import Unavailable
    from serve_app import inventory
    from serve_app.actors import ActorDirectory

    @ray_cluster.remote(num_cpus=0)
    class Shard:
        async def set_stock(self, sku: str, on_hand: int) -> dict[str, Any]:
            await asyncio.sleep(3600 if on_hand == 0 else 0)
            return {"sku": sku, "on_hand": on_hand, "reserved": 0}

    handle = Shard.remote()  # type: ignore[attr-defined]
    directory = ActorDirectory(settings.ray_namespace, with_ray=True)
    name = "inventory-shard-0"
    directory._handles[name] = handle  # the replica's cache, holding this shard
    service = inventory.InventoryService(None, directory, 1)  # type: ignore[arg-type]
    monkeypatch.setattr(inventory, "_WRITE_S", 1.0)
    with pytest.raises(Unavailable, match="did not answer"):
        asyncio.run(service.set_on_hand("SKU-1", 0))
    ray_cluster.kill(handle, no_restart=True)
    # `ray.kill` only sends the kill: a call made before the actor is gone is still answered
    wait_until(lambda: _gone(ray_cluster, handle), timeout=30, what="the killed shard to die")
    with pytest.raises(Unavailable, match="restarting"):
        asyncio.run(service.set_on_hand("SKU-1", 5))
    assert name not in directory._handles  # the next write looks the shard up again
