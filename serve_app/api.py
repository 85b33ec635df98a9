"""The HTTP API as a FastAPI app: served by Ray Serve (cluster.app) or, for the benchmark
baseline, by plain uvicorn. Routes validate, authorize, call one service function, map errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core import heap
from core.settings import Settings, get_settings
from domain.commands import CancelOrder, PlaceOrder, SetStock
from serve_app import docs_pages, errors, openapi, routes_operations, routes_orders
from serve_app.faults import FaultSpec
from serve_app.gate import Gate
from serve_app.responses import JsonResponse
from serve_app.wiring import open_services

_DESCRIPTION = """Real-time order processing on Ray actors, Kafka, Postgres and Redis.

Every error is `{"error": {"code", "message", "details"?}}`. Requests are read strictly: one
`Authorization` header (two → 400), JSON bodies only (415 otherwise), no duplicate JSON keys
(400), ids in paths in canonical lower-case UUID form (any other form → 404). Responses carry
`Cache-Control: no-store`. Every GET but the live stream also answers HEAD; a 405's `Allow`
names every method of its path."""


def create_app(
    *,
    with_ray: bool = True,
    on_start: Callable[[Settings], Awaitable[None]] | None = None,
) -> FastAPI:
    """Build the API. `with_ray=False` serves without the platform's actors (the benchmark's
    baseline: accept path and reads); `on_start` runs before the gateway opens its pools
    (cluster/app.py: start the actors)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = get_settings()
        app.state.services = await open_services(settings, with_ray=with_ray, on_start=on_start)
        heap.settle(settings.gc_gen0_threshold)  # started: freeze what the start left
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(
        title="Ray orders API",
        version="0.2.0",
        description=_DESCRIPTION,
        default_response_class=JsonResponse,
        lifespan=lifespan,
        # no 307 to the path without its slash: its Location was built from the Host header a
        # client sent, and its body was empty (every error here is JSON); such a path is a 404
        redirect_slashes=False,
        docs_url=None,  # docs_pages: pinned files with integrity hashes
        redoc_url=None,
    )
    app.add_middleware(Gate, max_body_bytes=get_settings().max_body_bytes)
    errors.install(app)
    app.include_router(routes_orders.router)
    app.include_router(routes_operations.router)
    docs_pages.install(app, app.openapi_url or "/openapi.json")
    # every route with its path and methods, for a 405's Allow (errors.allowed_methods)
    routers = (app.router, routes_orders.router, routes_operations.router)
    app.state.method_routes = [route for router in routers for route in router.routes]
    openapi.install(app, [PlaceOrder, CancelOrder, SetStock, FaultSpec])
    return app
