"""The HTTP API as a FastAPI app: served by Ray Serve (cluster.app) or, for the benchmark
baseline, by plain uvicorn. Routes validate, authorize, call one service function, map errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sse_starlette.sse import EventSourceResponse

from core.auth import AuthError, Principal, authenticate
from core.settings import Settings, get_settings
from domain.commands import SKU_PATTERN, PlaceOrder, SetStock
from domain.model import OrderStatus
from serve_app import errors
from serve_app.fast_accept import FastAccept
from serve_app.limits import BodyLimitMiddleware
from serve_app.live import status_stream
from serve_app.responses import JsonResponse
from serve_app.state import AppState, FaultSpec

_bearer = HTTPBearer(auto_error=False, description="HS256 JWT (see `make token`)")
OrderId = Annotated[uuid.UUID, Path(description="order id (UUID)")]
Sku = Annotated[str, Path(pattern=SKU_PATTERN)]
_JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}


async def _state(request: Request) -> AppState:
    # async on purpose: FastAPI runs a sync dependency in a worker thread, on every request
    state: AppState = request.app.state.services
    return state


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer":
        raise AuthError("missing bearer token: send 'Authorization: Bearer <JWT>'")
    return authenticate(creds.credentials, (await _state(request)).settings)


async def admin(p: Annotated[Principal, Depends(principal)]) -> Principal:
    if not p.is_admin:
        raise AuthError("this operation needs the admin role", status=403, code="forbidden")
    return p


Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
AppStateDep = Annotated[AppState, Depends(_state)]


def accepted(body: dict[str, Any], replayed: bool) -> JsonResponse:
    """The 202 of an accepted (or replayed) order."""
    headers = {"Location": body["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JsonResponse(body, status_code=202, headers=headers)


def create_app(
    *,
    with_ray: bool = True,
    on_start: Callable[[Settings], Awaitable[None]] | None = None,
) -> FastAPI:
    """Build the API. `with_ray=False` serves the accept path only (benchmark baseline);
    `on_start` runs before the gateway opens its pools (cluster/app.py: start the actors)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await AppState.start(
            get_settings(), with_ray=with_ray, on_start=on_start
        )
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(
        title="Ray orders API",
        version="0.1.0",
        description="Real-time order processing on Ray actors, Kafka, Postgres and Redis.",
        default_response_class=JsonResponse,
        lifespan=lifespan,
    )
    app.add_middleware(FastAccept, respond=accepted)  # inside the body limit: added first
    app.add_middleware(BodyLimitMiddleware, max_bytes=get_settings().max_body_bytes)
    errors.install(app)
    _routes(app)
    return app


def _routes(app: FastAPI) -> None:
    @app.post(
        "/api/orders",
        status_code=202,
        tags=["orders"],
        # the hot path answers with its own response: no second pass of FastAPI's encoder
        response_model=None,
        responses={202: {"description": "Accepted", "content": _JSON_OBJECT}},
    )
    async def place_order(
        cmd: PlaceOrder,
        st: AppStateDep,
        who: Caller,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    ) -> JsonResponse:
        """Accept an order: stored with its `order.created` event in one transaction, then 202.

        With `Idempotency-Key`, a retry with the same body replays the first response.
        """
        return accepted(*await st.place_order(who, cmd, idempotency_key))

    @app.get("/api/orders/{order_id}", tags=["orders"])
    async def get_order(order_id: OrderId, st: AppStateDep, who: Caller) -> dict[str, Any]:
        """One order with its timeline (owner or admin; others get 404)."""
        return await st.orders.get(who, order_id)

    @app.get("/api/orders", tags=["orders"])
    async def list_orders(
        st: AppStateDep,
        who: Caller,
        status: Annotated[OrderStatus | None, Query()] = None,
        customer_id: Annotated[str | None, Query(alias="customerId", pattern=SKU_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """A page of orders, newest first; customers see their own, admins all."""
        return await st.orders.list(
            who,
            status=status.value if status else None,
            customer_id=customer_id,
            limit=limit,
            cursor=cursor,
        )

    @app.post("/api/orders/{order_id}/cancel", status_code=202, tags=["orders"])
    async def cancel_order(order_id: OrderId, st: AppStateDep, who: Caller) -> dict[str, Any]:
        """Cancel while not shipped (202); 409 once shipped or already final."""
        return await st.orders.cancel(who, order_id, reason="cancelled by user")

    @app.get("/api/inventory/{sku}", tags=["inventory"])
    async def get_inventory(sku: Sku, st: AppStateDep, who: Caller) -> dict[str, Any]:
        """On-hand, reserved and available stock of one SKU."""
        return await st.inventory_of(sku)

    @app.put("/api/inventory/{sku}", tags=["inventory"])
    async def put_inventory(
        sku: Sku, body: SetStock, st: AppStateDep, who: Admin
    ) -> dict[str, Any]:
        """Set on-hand stock (admin). It cannot go below what is reserved."""
        return await st.set_stock(sku, body.on_hand)

    @app.get("/api/orders/{order_id}/events", tags=["orders"])
    async def order_events(order_id: OrderId, st: AppStateDep, who: Caller) -> EventSourceResponse:
        """Server-Sent Events: one `status` event per status change, closing at a final status."""
        await st.orders.status_of(who, order_id)  # 404 for strangers, before streaming
        return EventSourceResponse(status_stream(st.pool, st.redis, order_id), ping=15)

    @app.post("/api/admin/faults", tags=["admin"])
    async def set_fault(body: FaultSpec, st: AppStateDep, who: Admin) -> dict[str, Any]:
        """Fault injection (dev mode only): payment provider down, shipments failing/held."""
        return await st.set_fault(body)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics(st: AppStateDep) -> PlainTextResponse:
        """Prometheus text of the platform's metrics (as exported by Ray's metrics agent)."""
        return PlainTextResponse(await st.metrics_text(), media_type="text/plain; version=0.0.4")

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready(st: AppStateDep) -> JsonResponse:
        """Readiness of each dependency: Postgres, Redis, Kafka (via the relay), consumers."""
        report = await st.readiness()
        return JsonResponse(report, status_code=200 if report["status"] != "down" else 503)
