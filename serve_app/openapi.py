"""The OpenAPI document: typed errors per status, request bodies (read by `deps.json_body`,
so FastAPI does not see them), and the bearer scheme."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from serve_app.models import ErrorEnvelope

_REF = "#/components/schemas/{model}"
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "Bad request: body not strict JSON (duplicate key, NaN, …) or a header that must "
        "appear once was repeated (`Authorization`, `Content-Type`, `Idempotency-Key`)",
        "duplicate_header",
        "send exactly one Authorization header",
    ),
    401: ("No token, or a token that cannot be trusted", "unauthorized", "token expired"),
    403: (
        "Authenticated, but not allowed: admin-only operation, a token without a known role, "
        "a customerId owned by another principal, or a new customerId beyond the "
        "MAX_CUSTOMER_IDS_PER_PRINCIPAL ids one principal may own (`customer_id_limit`)",
        "forbidden",
        "this operation needs the admin role",
    ),
    404: ("Not found (also another customer's order)", "not_found", "order not found"),
    409: ("Conflict with the current state", "conflict", "order is SHIPPED"),
    413: ("Body over MAX_BODY_BYTES", "payload_too_large", "request body over 65536 bytes"),
    415: (
        "A body that is not `application/json`",
        "unsupported_media_type",
        "send the body as 'Content-Type: application/json'",
    ),
    422: ("Valid JSON that breaks the schema", "validation_error", "request does not match"),
    429: ("Rate limit reached; see Retry-After", "rate_limited", "retry later"),
    503: (
        "A dependency is down or the payment circuit is open; see Retry-After. Nothing is stored, "
        "unless the database's answer to a commit was lost: retry with the same Idempotency-Key",
        "unavailable",
        "a backing service is restarting or too slow; retry shortly (with the same "
        "Idempotency-Key a retry never stores an order twice)",
    ),
}
# Answered by the gate (serve_app/gate.py) on every route.
EVERY_ROUTE = (400, 413, 415)
AUTHENTICATED = (*EVERY_ROUTE, 401, 403, 503)


def errors(*statuses: int, said: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: the error envelope, with an example, for each status; `said`
    replaces the description of a status whose meaning on this route is its own."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        description, code, message = _ERRORS[status]
        description = (said or {}).get(status, description)
        entry: dict[str, Any] = {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": _REF.format(model=ErrorEnvelope.__name__)},
                    "example": {"error": {"code": code, "message": message}},
                }
            },
        }
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        out[status] = entry
    return out


def body(model: type[BaseModel], example: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """`openapi_extra=` of a route whose body `deps.json_body(model)` (or, not `required`,
    `deps.optional_body(model)`) reads."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


def install(app: FastAPI, bodies: list[type[BaseModel]]) -> None:
    """Replace `app.openapi` with one that adds the body models, the error envelope and the
    bearer scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        models: list[type[BaseModel]] = [*bodies, ErrorEnvelope]
        for model in models:
            js = model.model_json_schema(by_alias=True, ref_template=_REF)
            schemas.update(js.pop("$defs", {}))
            schemas[model.__name__] = js
        components["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                _drop_fastapi_422(operation)
                if path.startswith("/api/") or path == "/metrics":
                    operation["security"] = [{"bearerAuth": []}]
                elif path == "/ready":
                    operation["security"] = [{}, {"bearerAuth": []}]
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_fastapi_422(operation: dict[str, Any]) -> None:
    """FastAPI documents `422 {detail}` on every route with a parameter; the API never sends
    that shape, and routes whose parameters cannot fail validation never send 422 at all."""
    content = operation["responses"].get("422", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    if ref.endswith("/HTTPValidationError"):
        del operation["responses"]["422"]
