"""FastAPI dependencies: one per service a route needs, the caller's identity, strict JSON
bodies and canonical ids. Dependencies are async on purpose: FastAPI runs a sync dependency in
a worker thread, on every request."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from pydantic import BaseModel

from core.auth import Principal, authenticate, bearer_token, forbidden
from core.settings import Settings
from serve_app.faults import FaultInjector
from serve_app.inventory import InventoryService
from serve_app.live import LiveStatus
from serve_app.metrics_proxy import MetricsProxy
from serve_app.orders_service import OrderService
from serve_app.readiness import ReadinessProbe
from serve_app.strict import (
    CANONICAL_UUID_PATTERN,
    canonical_uuid,
    parse_body,
    require_json,
    single_headers,
)
from serve_app.wiring import Services

M = TypeVar("M", bound=BaseModel)


def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _orders(request: Request) -> OrderService:
    return services(request).orders


async def _inventory(request: Request) -> InventoryService:
    return services(request).inventory


async def _faults(request: Request) -> FaultInjector:
    return services(request).faults


async def _live(request: Request) -> LiveStatus:
    return services(request).live


async def _readiness(request: Request) -> ReadinessProbe:
    return services(request).readiness


async def _metrics(request: Request) -> MetricsProxy:
    return services(request).metrics


async def _settings(request: Request) -> Settings:
    return services(request).settings


async def optional_principal(request: Request) -> Principal | None:
    """The caller when it sent a token (checked like everywhere else), None when it sent none."""
    header = single_headers(request.scope["headers"]).get(b"authorization")
    if header is None:
        return None
    return authenticate(bearer_token(header.decode("latin-1")), services(request).settings)


async def principal(request: Request) -> Principal:
    header = single_headers(request.scope["headers"]).get(b"authorization")
    token = bearer_token(None if header is None else header.decode("latin-1"))
    return authenticate(token, services(request).settings)


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise forbidden("this operation needs the admin role")
    return who


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading the body as `model`: 415 unless JSON, 400 unless strict JSON,
    422 unless valid. The route's `openapi_extra` documents it (serve_app/openapi.py)."""

    async def read(request: Request) -> M:
        require_json(single_headers(request.scope["headers"]).get(b"content-type"))
        return parse_body(model, await request.body())

    return read


async def optional_body(model: type[M], request: Request) -> M | None:
    """The body as `model` by the rules of `json_body`, or None when there is none. Always
    read: one over MAX_BODY_BYTES is a 413 (the Gate counts what is read, and a chunked body
    has no length to refuse it by)."""
    raw = await request.body()
    if not raw:
        return None
    require_json(single_headers(request.scope["headers"]).get(b"content-type"))
    return parse_body(model, raw)


async def _order_id(
    order_id: Annotated[
        str,
        Path(
            description="order id: a canonical (lower-case, hyphenated) UUID; any other form "
            "is 404",
            json_schema_extra={"pattern": CANONICAL_UUID_PATTERN, "format": "uuid"},
        ),
    ],
) -> uuid.UUID:
    return canonical_uuid(order_id)


Caller = Annotated[Principal, Depends(principal)]
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]
Admin = Annotated[Principal, Depends(admin)]
OrderId = Annotated[uuid.UUID, Depends(_order_id)]
Orders = Annotated[OrderService, Depends(_orders)]
Inventory = Annotated[InventoryService, Depends(_inventory)]
Faults = Annotated[FaultInjector, Depends(_faults)]
Live = Annotated[LiveStatus, Depends(_live)]
Ready = Annotated[ReadinessProbe, Depends(_readiness)]
Metrics = Annotated[MetricsProxy, Depends(_metrics)]
AppSettings = Annotated[Settings, Depends(_settings)]
