"""Translate typed errors into JSON responses: `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.auth import AuthError
from domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    OrderError,
    OutOfStock,
    RateLimited,
    Unavailable,
)

log = logging.getLogger(__name__)

_STATUS: dict[type[OrderError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    OutOfStock: 409,
    Unavailable: 503,
    RateLimited: 429,
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> ORJSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return ORJSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and what: never echo the input back (it may hold secrets or huge payloads).
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(OrderError)
    async def _order_error(_: Request, exc: OrderError) -> ORJSONResponse:
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 400)
        headers = None
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        return error_response(status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(AuthError)
    async def _auth_error(_: Request, exc: AuthError) -> ORJSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="orders-api"'} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "invalid_json", "request body is not valid JSON", details)
        return error_response(422, "validation_error", "request does not match the schema", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(
            exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})
        )

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _dependency_down(_: Request, exc: Exception) -> ORJSONResponse:
        log.warning("dependency unavailable: %s", type(exc).__name__)
        return error_response(
            503,
            "unavailable",
            "a backing service is restarting; retry shortly (nothing stored)",
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; it has been logged")
