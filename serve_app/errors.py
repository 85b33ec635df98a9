"""Translate typed errors into JSON responses: `{"error": {"code", "message", "details"?}}`.

One function (`response_for`) maps every expected error, whoever raised it: a route, a
dependency (token, body), or the request gate in front of the app (serve_app/gate.py)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from core.auth import AuthError
from domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    OrderError,
    RateLimited,
    Unavailable,
)
from serve_app.responses import JsonResponse

log = logging.getLogger(__name__)

_STATUS: dict[type[OrderError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    Unavailable: 503,
    RateLimited: 429,
}
# the Gate's (serve_app/gate.py), for the one answer that does not pass through it
_SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# the live streams' paths (routes_orders.py): no HEAD there (serve_app/gate.py)
NO_HEAD_SUFFIX = "/events"


def allowed_methods(request: Request) -> str:
    """The methods of every route of the request's path (Starlette names only the first such
    route's: `POST` for /api/orders, which has GET too), with HEAD wherever GET is (the Gate
    serves it) but on a live stream. The routes are `app.state.method_routes` where the app
    listed them (serve_app/api.py: FastAPI nests an included router's), else the app's own."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):  # as routing sees it (Starlette's route path)
        path = path[len(root) :]
    methods: set[str] = set()
    for route in getattr(request.app.state, "method_routes", None) or request.app.router.routes:
        regex, own = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and own and regex.match(path):
            methods |= own
    if "GET" in methods and not path.endswith(NO_HEAD_SUFFIX):
        methods.add("HEAD")
    return ", ".join(sorted(methods))


class RequestRejected(Exception):
    """A request the API refuses before doing anything: malformed headers or body."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JsonResponse({"error": body}, status_code=status, headers=headers)


def validation_details(errors: list[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Only where and what: never echo the input back (it may hold secrets or huge payloads)."""
    return [
        {
            "loc": [*prefix, *(str(p) for p in err.get("loc", ()))],
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in errors
    ]


_DEPENDENCY_DOWN = (psycopg.OperationalError, PoolTimeout, RedisConnectionError, RedisTimeoutError)


def response_for(exc: Exception) -> JsonResponse | None:
    """The answer to a typed error or a backing service that is down; None for anything else."""
    if isinstance(exc, RequestRejected):
        return error_response(exc.status, exc.code, exc.message, exc.details)
    if isinstance(exc, OrderError):
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 400)
        retry_after = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return error_response(status, exc.code, exc.message, exc.details, headers)
    if isinstance(exc, AuthError):
        headers = {"WWW-Authenticate": 'Bearer realm="orders-api"'} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers=headers)
    if isinstance(exc, _DEPENDENCY_DOWN):
        log.warning("dependency unavailable: %s", type(exc).__name__)
        return error_response(
            503,
            "unavailable",
            "a backing service is restarting or too slow; retry shortly (with the same "
            "Idempotency-Key a retry never stores an order twice)",
            headers={"Retry-After": "2"},
        )
    return None


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(RequestRejected)
    @app.exception_handler(OrderError)
    @app.exception_handler(AuthError)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _typed(_: Request, exc: Exception) -> JsonResponse:
        response = response_for(exc)
        assert response is not None  # registered for exactly the types it maps
        return response

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JsonResponse:
        # the client left before its body arrived (a dropped upload): nothing is wrong here, so
        # no traceback and no 5xx; handled here, it never reaches ServerErrorMiddleware, which
        # would log it again and re-raise. Nobody reads this answer: the server drops it.
        log.debug("client disconnected before its request body was read")
        return error_response(400, "client_disconnected", "the request body did not arrive")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JsonResponse:
        details = validation_details(list(exc.errors()))
        return error_response(422, "validation_error", "request does not match the schema", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JsonResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JsonResponse:
        log.exception("unhandled error")
        # this handler runs outside the Gate (Starlette's ServerErrorMiddleware wraps every
        # middleware), so the Gate's headers are set here
        return error_response(
            500, "internal", "internal error; it has been logged", headers=_SECURITY_HEADERS
        )
