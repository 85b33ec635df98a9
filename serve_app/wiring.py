"""What one gateway process opens at start and closes at stop: the resources (Postgres pools,
the async Redis client, Ray actor handles, an HTTP client to the metrics agent) and the
services built on them. Routes ask for one service each (serve_app/deps.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from adapters.accept_store import CLAIM_CAP_SETTING
from adapters.orders_repo import Pool
from adapters.pg import open_pool
from adapters.redis_clients import async_client
from adapters.uow import UnitOfWork
from core.settings import Settings
from serve_app.accept import AcceptService, OrderIntake
from serve_app.actors import ActorDirectory
from serve_app.admission import Admission, Idempotency, RedisOutage
from serve_app.faults import FaultInjector
from serve_app.inventory import InventoryService
from serve_app.live import LiveStatus
from serve_app.metrics_proxy import MetricsProxy
from serve_app.orders_service import OrderService
from serve_app.readiness import ReadinessProbe


@dataclass(frozen=True)
class Services:
    settings: Settings
    accept: AcceptService
    orders: OrderService
    inventory: InventoryService
    faults: FaultInjector
    live: LiveStatus
    readiness: ReadinessProbe
    metrics: MetricsProxy
    _pool: Pool
    _redis: aioredis.Redis

    async def close(self) -> None:
        await self.accept.close()
        await self.metrics.close()
        await self._redis.aclose()
        await self._pool.close()


async def open_services(
    settings: Settings,
    *,
    with_ray: bool,
    on_start: Callable[[Settings], Awaitable[None]] | None = None,
) -> Services:
    """Open pools and clients; `on_start` runs first (the composition root passes the step
    that brings up the platform's actors, see cluster/app.py)."""
    pool = await open_pool(settings.database_url, settings.db_pool_size, "gateway")
    # a command that waits longer than REDIS_TIMEOUT_S fails: admission and idempotency then
    # fail open (Postgres keeps every order and its key); SSE waits pass their own timeouts
    redis = async_client(settings.redis_url)
    if on_start is not None:
        await on_start(settings)
    intake_pool = await open_pool(
        settings.database_url,
        settings.accept_flushers,
        "gateway-intake",
        autocommit=True,
        session={CLAIM_CAP_SETTING: str(settings.max_customer_ids_per_principal)},
    )
    actors = ActorDirectory(settings.ray_namespace, with_ray=with_ray)
    outage = RedisOutage()
    services = Services(
        settings=settings,
        accept=AcceptService(
            Admission(redis, settings.rate_limit_per_min, settings.breaker_reset_s, outage),
            Idempotency(redis, settings.idempotency_ttl_s, outage),
            await OrderIntake.open(
                intake_pool, settings.accept_flushers, settings.max_customer_ids_per_principal
            ),
        ),
        orders=OrderService(pool, UnitOfWork(pool, settings.redis_url)),
        inventory=InventoryService(pool, actors, settings.inventory_shards),
        faults=FaultInjector(redis, settings.app_env),
        live=LiveStatus(
            pool,
            redis,
            settings.sse_streams_cap,
            settings.sse_max_streams_per_principal,
        ),
        readiness=ReadinessProbe(pool, redis, actors, settings, outage),
        metrics=MetricsProxy(settings.metrics_export_port),
        _pool=pool,
        _redis=redis,
    )
    return services
