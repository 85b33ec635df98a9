"""Inventory, admin and operations routes. What describes the deployment (dependency details,
metrics with node addresses, worker ids and versions) is for admins only: anonymous callers
get liveness and the overall readiness status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import PlainTextResponse

from domain.commands import SKU_PATTERN, SetStock
from serve_app import openapi
from serve_app.deps import Admin, Caller, Faults, Inventory, MaybeCaller, Metrics, Ready, json_body
from serve_app.faults import FaultSpec
from serve_app.models import FaultState, Health, Readiness, Stock
from serve_app.responses import JsonResponse

router = APIRouter()
Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="catalog sku, e.g. SKU-1")]


@router.get(
    "/api/inventory/{sku}",
    tags=["inventory"],
    responses=openapi.errors(*openapi.AUTHENTICATED, 404, 422),
)
async def get_inventory(sku: Sku, who: Caller, inventory: Inventory) -> Stock:
    """On-hand, reserved and available stock of one SKU (any authenticated caller)."""
    return await inventory.get(sku)


@router.put(
    "/api/inventory/{sku}",
    tags=["inventory"],
    responses=openapi.errors(
        *openapi.AUTHENTICATED,
        404,
        409,
        422,
        said={
            503: "The SKU's inventory shard is restarting, or did not answer within 15 s (the "
            "write may still apply: read the stock before writing again); see Retry-After",
        },
    ),
    openapi_extra=openapi.body(SetStock, {"onHand": 500}),
)
async def put_inventory(
    sku: Sku,
    who: Admin,
    body: Annotated[SetStock, Depends(json_body(SetStock))],
    inventory: Inventory,
) -> Stock:
    """Set on-hand stock (admin). It cannot go below what is reserved (409)."""
    return await inventory.set_on_hand(sku, body.on_hand)


@router.post(
    "/api/admin/faults",
    tags=["admin"],
    responses=openapi.errors(*openapi.AUTHENTICATED, 409, 422),
    openapi_extra=openapi.body(FaultSpec, {"fault": "payment-provider", "enabled": True}),
)
async def set_fault(
    who: Admin, spec: Annotated[FaultSpec, Depends(json_body(FaultSpec))], faults: Faults
) -> FaultState:
    """Fault injection (admin): payment provider down, shipments failing or held for one
    customer. Setting a flag needs `APP_ENV=dev`; clearing one works under any APP_ENV (a flag
    lives an hour in Redis). `payment-provider` is global (a `customerId` → 422);
    `shipping-fail` and `shipping-hold` need a `customerId`."""
    return await faults.set(spec)


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **openapi.errors(*openapi.AUTHENTICATED),
    },
)
async def metrics(who: Admin, proxy: Metrics) -> PlainTextResponse:
    """Prometheus text of the platform's metrics (admin: series carry node addresses and
    worker ids). Scrape with `Authorization: Bearer <admin JWT>`."""
    return PlainTextResponse(await proxy.text(), media_type="text/plain; version=0.0.4")


@router.get("/health", tags=["ops"], responses=openapi.errors(*openapi.EVERY_ROUTE, 401, 403))
async def health(who: MaybeCaller) -> Health:
    """Liveness: the process answers. No token needed; one that is sent must pass (401/403),
    as on every route: a client with a bad token learns it here too."""
    del who  # checked by the dependency
    return Health(status="ok")


@router.get(
    "/ready",
    tags=["ops"],
    response_model=Readiness,
    response_model_exclude_unset=True,
    responses={
        503: {
            "model": Readiness,
            "description": "Postgres does not answer: no order can be accepted",
        },
        **openapi.errors(*openapi.EVERY_ROUTE, 401, 403),
    },
)
async def ready(who: MaybeCaller, probe: Ready) -> JsonResponse:
    """Readiness: `status` for everyone (503 when down: Postgres does not answer; `degraded`
    when another part is down); with an admin token, `checks` per
    dependency (Postgres, Redis, Kafka via the relay, consumers, payment circuit)."""
    report = await probe.report()
    shown = report if who is not None and who.is_admin else Readiness(status=report.status)
    return JsonResponse(
        shown.model_dump(mode="json", exclude_unset=True),
        status_code=503 if report.status == "down" else 200,
    )
