"""What one gateway process holds: settings, the PG pool, Redis, and handles to actors."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field
from ray.exceptions import RayTaskError

from adapters.pg import Row, open_pool
from adapters.provider import FAULT_KEY, OPENED_AT_KEY, STATE_KEY, open_for
from core import registry
from core.auth import Principal
from core.metrics import families_without_samples
from core.priority import renice_process, settle_gc
from core.settings import Settings
from domain.commands import SKU_PATTERN, PlaceOrder
from domain.errors import Conflict, InvalidInput, NotFound, OrderError, Unavailable
from serve_app.accept import OrderIntake
from serve_app.admission import Admission, Idempotency
from serve_app.orders_service import OrderService
from serve_app.views import inventory_view

log = logging.getLogger(__name__)
_PROBE_TIMEOUT_S = 2.0
_SERVE_FAMILIES = ("ray_serve_num_http", "ray_serve_deployment_request")


def _is_platform_metric(line: str) -> bool:
    """Our `orders_*` families and Serve's request counters, with their HELP/TYPE lines."""
    if line.startswith(("# HELP ", "# TYPE ")):
        name = line.split(" ", 3)[2]
    else:
        name = line.split("{", 1)[0].split(" ", 1)[0]
    return "orders_" in name or name.startswith(_SERVE_FAMILIES)


class FaultSpec(BaseModel):
    """A dev-mode fault: `payment-provider` (global) or `shipping-fail`/`shipping-hold`
    (for one customer's shipments)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    fault: Literal["payment-provider", "shipping-fail", "shipping-hold"]
    enabled: bool
    customer_id: str | None = Field(default=None, alias="customerId", pattern=SKU_PATTERN)


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool[AsyncConnection[Row]]
    redis: aioredis.Redis
    intake: OrderIntake
    orders: OrderService
    with_ray: bool
    admission: Admission
    idempotency: Idempotency
    _actors: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        with_ray: bool,
        on_start: Callable[[Settings], Awaitable[None]] | None = None,
    ) -> AppState:
        """Open pools and clients; `on_start` runs first (the composition root passes the step
        that brings up the platform's actors, see cluster/app.py)."""
        pool = await open_pool(settings.database_url, settings.db_pool_size, "gateway")
        redis = aioredis.from_url(settings.redis_url, decode_responses=True)
        if with_ray:  # the Serve replica: accepts go ahead of the pipeline (ADR-007)
            renice_process(settings.gateway_niceness, "gateway replica")
        if on_start is not None:
            await on_start(settings)
        prices = await OrderIntake.load_prices(pool)
        if not prices:
            raise RuntimeError("the catalog is empty: run `make up` (it seeds SKU-1…SKU-100)")
        intake_pool = await open_pool(
            settings.database_url, settings.accept_flushers, "gateway-intake", autocommit=True
        )
        state = cls(
            settings,
            pool,
            redis,
            OrderIntake(intake_pool, prices, settings.accept_flushers),
            OrderService(pool),
            with_ray,
            Admission(redis, settings.rate_limit_per_min, settings.breaker_reset_s),
            Idempotency(redis, settings.idempotency_ttl_s),
        )
        settle_gc(settings.gateway_gc_gen0_threshold, freeze=settings.gateway_gc_freeze)
        return state

    async def close(self) -> None:
        await self.intake.close()
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

    async def place_order(
        self, who: Principal, cmd: PlaceOrder, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Admit and store an order; returns its body and whether it is a replay of the first
        request with the same Idempotency-Key (Stripe semantics, see `Idempotency`)."""
        await self.admission.check(who.sub)  # rate limit and circuit breaker, before storing
        if idempotency_key is None:
            return await self.intake.place(who, cmd)
        fp = self.idempotency.fingerprint(cmd.model_dump(mode="json", by_alias=True))
        stored = await self.idempotency.begin(who.sub, idempotency_key, fp)
        if stored is not None:
            return stored, True
        try:
            body, replayed = await self.intake.place(who, cmd, (idempotency_key, fp))
        except BaseException:
            await self.idempotency.abandon(who.sub, idempotency_key)
            raise
        await self.idempotency.finish(who.sub, idempotency_key, fp, body)
        return body, replayed

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
        try:
            row: Row = await self.actor(registry.inventory_shard(shard)).set_stock.remote(
                sku, on_hand
            )
        except RayTaskError as exc:  # re-raise the shard's typed error for the HTTP mapping
            if isinstance(exc.cause, OrderError):
                raise exc.cause from None
            raise
        return inventory_view(row)

    async def set_fault(self, spec: FaultSpec) -> dict[str, Any]:
        if self.settings.app_env != "dev":
            raise Conflict("fault injection is only available with APP_ENV=dev")
        if spec.fault == "payment-provider":
            key = FAULT_KEY
        elif spec.customer_id is None:
            raise InvalidInput(f"{spec.fault} needs customerId")
        else:
            key = f"fault:{spec.fault}:{spec.customer_id}"
        if spec.enabled:
            await self.redis.set(key, "down" if spec.fault == "payment-provider" else "1", ex=3600)
        else:
            await self.redis.delete(key)
        return {"fault": spec.fault, "customerId": spec.customer_id, "enabled": spec.enabled}

    async def metrics_text(self) -> str:
        """Our metrics from Ray's Prometheus endpoint on this node."""
        url = f"http://127.0.0.1:{self.settings.metrics_export_port}/metrics"

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 (loopback)
                return str(resp.read().decode())

        try:
            text = await asyncio.to_thread(fetch)
        except OSError:
            raise Unavailable("Ray's metrics agent is not reachable on this node") from None
        keep = [line for line in text.splitlines() if _is_platform_metric(line)]
        keep += families_without_samples(text)
        return "\n".join(keep) + "\n"

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

        async def payments() -> dict[str, Any]:
            state, opened = await self.redis.mget([STATE_KEY, OPENED_AT_KEY])
            wait = open_for(state, opened, self.settings.breaker_reset_s)
            breaker = {"breaker": "open", "retryAfterS": wait} if wait else {"breaker": "closed"}
            return {"status": "degraded" if wait else "up", **breaker}

        probes = [probe("postgres", pg()), probe("redis", redis()), probe("payments", payments())]
        if self.with_ray:
            probes.append(probe("relay", actor_health(registry.RELAY)))
            probes += [
                probe(f"consumer:{g}", actor_health(registry.consumer(g)))
                for g in registry.CONSUMERS
            ]
            probes.append(
                probe(
                    f"consumer:{registry.NOTIFICATION_GROUP}",
                    actor_health(registry.NOTIFICATION),
                )
            )
        await asyncio.gather(*probes)
        if "relay" in checks:
            kafka = (
                checks["relay"].get("kafka", "down")
                if isinstance(checks["relay"], dict)
                else "down"
            )
            checks["kafka"] = {"status": kafka}
        states = {c.get("status") for c in checks.values()}
        overall = "up" if states <= {"up"} else ("down" if "down" in states else "degraded")
        return {"status": overall, "checks": checks}
