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

# A request never waits on Postgres without end (a lock held by a migration, a server that no
# longer answers): a statement runs at most 10 s and a connection is waited for at most 10 s,
# then the request gets the JSON 503 of serve_app/errors.py (QueryCanceled and PoolTimeout);
# a server the network cut off is given up by libpq's own timeouts (adapters/pg.py,
# CLIENT_TIMEOUTS), and on the local stack HAProxy's `timeout server` (cluster/common.sh)
# bounds the rest. The gateway's statements take milliseconds; the cancel waits at most 5 s
# for its order's lock, an order page has 50 s (adapters/orders_repo.py).
GATEWAY_SESSION = {"statement_timeout": "10s"}
GATEWAY_CHECKOUT_S = 10.0


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
    _probe_pool: Pool

    async def close(self) -> None:
        await self.accept.close()
        await self.metrics.close()
        await self._redis.aclose()
        await self._pool.close()
        await self._probe_pool.close()


async def _gateway_pool(
    settings: Settings,
    name: str,
    size: int,
    *,
    autocommit: bool = False,
    session: dict[str, str] | None = None,
    checkout_s: float = GATEWAY_CHECKOUT_S,
    wait_for_postgres: bool = False,
) -> Pool:
    return await open_pool(
        settings.database_url,
        size,
        name,
        autocommit=autocommit,
        session={**GATEWAY_SESSION, **(session or {})},
        checkout_s=checkout_s,
        wait_for_postgres=wait_for_postgres,
    )


async def open_services(
    settings: Settings,
    *,
    with_ray: bool,
    on_start: Callable[[Settings], Awaitable[None]] | None = None,
) -> Services:
    """Open pools and clients; `on_start` runs first (the composition root passes the step
    that brings up the platform's actors, see cluster/app.py)."""
    # waits for Postgres for as long as it takes: a replica start that failed on it counted
    # towards the few Serve allows before it gives the deployment up for good (DEPLOY_FAILED)
    pool = await _gateway_pool(settings, "gateway", settings.db_pool_size, wait_for_postgres=True)
    # a command that waits longer than REDIS_TIMEOUT_S fails: admission and idempotency then
    # fail open (Postgres keeps every order and its key); SSE waits pass their own timeouts
    redis = async_client(settings.redis_url)
    if on_start is not None:
        await on_start(settings)
    claim_cap = {CLAIM_CAP_SETTING: str(settings.max_customer_ids_per_principal)}
    intake_pool = await _gateway_pool(
        settings, "gateway-intake", settings.accept_flushers, autocommit=True, session=claim_cap
    )
    # readiness pings Postgres on connections of its own: requests that fill the gateway's
    # pool (cancels waiting for a row lock) do not make Postgres look down
    probe_pool = await _gateway_pool(settings, "gateway-probe", 2, checkout_s=1.0)
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
        readiness=ReadinessProbe(probe_pool, redis, actors, settings, outage),
        metrics=MetricsProxy(settings.metrics_export_port),
        _pool=pool,
        _redis=redis,
        _probe_pool=probe_pool,
    )
    return services
