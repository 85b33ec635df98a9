"""What one gateway process holds: settings, the PG pool, Redis, and handles to actors."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core import registry
from core.auth import Principal
from core.db import Row, open_pool
from core.settings import Settings
from domain.errors import NotFound, Unavailable
from serve_app.orders_service import OrderService
from serve_app.views import inventory_view

log = logging.getLogger(__name__)
_PROBE_TIMEOUT_S = 2.0


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[AsyncConnection[Row]]
    redis: aioredis.Redis
    orders: OrderService
    with_ray: bool
    _actors: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings, *, with_ray: bool) -> AppState:
        pool = await open_pool(settings.database_url, settings.db_pool_size, "gateway")
        redis = aioredis.from_url(settings.redis_url, decode_responses=True)
        prices = await OrderService.load_prices(pool)
        if not prices:
            raise RuntimeError("the catalog is empty: run `make up` (it seeds SKU-1…SKU-100)")
        return cls(settings, pool, redis, OrderService(pool, prices), with_ray)

    async def close(self) -> None:
        await self.orders.close()
        await self.redis.aclose()
        await self.pool.close()

    def actor(self, name: str) -> Any:
        """A cached handle to a named platform actor; Unavailable when Ray or it is missing."""
        if not self.with_ray:
            raise Unavailable("this gateway runs without Ray; use the Serve deployment")
        handle = self._actors.get(name)
        if handle is None:
            try:
                handle = registry.get_actor(name, self.settings.ray_namespace)
            except ValueError:
                raise Unavailable(f"actor {name} is not running; run `make up`") from None
            self._actors[name] = handle
        return handle

    async def guard_accept(self, who: Principal) -> None:
        """Admission checks before an order is accepted (extended by rate limits, breaker)."""
        return None

    async def inventory_of(self, sku: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sku, on_hand, reserved FROM inventory WHERE sku = %s", (sku,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"sku {sku} not found in the catalog")
        return inventory_view(row)

    async def set_stock(self, sku: str, on_hand: int) -> dict[str, Any]:
        """Route the write to the SKU's owner, the inventory shard actor."""
        shard = registry.shard_of(sku, self.settings.inventory_shards)
        row: Row = await self.actor(registry.inventory_shard(shard)).set_stock.remote(sku, on_hand)
        return inventory_view(row)

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}

        async def probe(name: str, coro: Any) -> None:
            try:
                checks[name] = await asyncio.wait_for(coro, _PROBE_TIMEOUT_S)
            except Exception as exc:
                checks[name] = {"status": "down", "error": type(exc).__name__}

        async def pg() -> dict[str, str]:
            async with self.pool.connection() as conn:
                await conn.execute("SELECT 1")
            return {"status": "up"}

        async def redis() -> dict[str, str]:
            await self.redis.ping()
            return {"status": "up"}

        async def actor_health(name: str) -> dict[str, Any]:
            health: dict[str, Any] = await self.actor(name).health.remote()
            return health

        probes = [probe("postgres", pg()), probe("redis", redis())]
        if self.with_ray:
            probes.append(probe("relay", actor_health(registry.RELAY)))
            probes += [probe(f"consumer:{g}", actor_health(registry.consumer(g)))
                       for g in registry.CONSUMERS]
        await asyncio.gather(*probes)
        if "relay" in checks:
            kafka = checks["relay"].get("kafka", "down") if isinstance(checks["relay"], dict) else "down"
            checks["kafka"] = {"status": kafka}
        states = {c.get("status") for c in checks.values()}
        overall = "up" if states <= {"up"} else ("down" if "down" in states else "degraded")
        return {"status": overall, "checks": checks}
