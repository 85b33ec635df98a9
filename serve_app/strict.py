"""The request rules every route shares: one `Authorization` header, JSON bodies only, strict
JSON, canonical ids. The gate (serve_app/gate.py) and the route dependencies (serve_app/deps.py)
call these same functions, so every path gives the same answer to the same odd request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from domain.errors import NotFound
from domain.strict_json import JsonRejected, loads
from serve_app.errors import RequestRejected, validation_details

M = TypeVar("M", bound=BaseModel)
_VISIBLE = re.compile(r"[\x20-\x7e]+")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CANONICAL_UUID_PATTERN = f"^{_CANONICAL_UUID.pattern}$"
IDEMPOTENCY_KEY_MAX = 255
_SINGLE = (b"authorization", b"content-type", b"content-length", b"idempotency-key")


def single_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name; 400 if a header that must appear at most
    once (`Authorization`, `Content-Type`, `Content-Length`, `Idempotency-Key`) repeats."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in found and name in _SINGLE:
            raise RequestRejected(
                400,
                "duplicate_header",
                f"send exactly one {name.decode().title()} header",
            )
        found.setdefault(name, value)
    return found


def has_body(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-length", b"0").strip() != b"0" or b"transfer-encoding" in headers


def require_json(content_type: bytes | None) -> None:
    """415 unless the media type is `application/json` (charset, if given, utf-8)."""
    media, _, params = (content_type or b"").decode("latin-1").partition(";")
    charset = {
        k.strip().lower(): v.strip().strip('"').lower()
        for k, _, v in (p.partition("=") for p in params.split(";") if p.strip())
    }.get("charset", "utf-8")
    if media.strip().lower() != "application/json" or charset != "utf-8":
        raise RequestRejected(
            415, "unsupported_media_type", "send the body as 'Content-Type: application/json'"
        )


def parse_body(model: type[M], body: bytes) -> M:
    """Strict JSON (400 `invalid_json`), then the model's rules (422 `validation_error`)."""
    try:
        data = loads(body)
    except JsonRejected as exc:
        raise RequestRejected(400, "invalid_json", f"request body: {exc.message}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestRejected(
            422,
            "validation_error",
            "request does not match the schema",
            validation_details(exc.errors(include_url=False, include_input=False), ("body",)),
        ) from None


def canonical_uuid(value: str, what: str = "order") -> uuid.UUID:
    """An id in a path: only the canonical form (lower-case hex, hyphenated, as the API writes
    ids) names a resource; anything else is 404, as an id that does not exist."""
    if not _CANONICAL_UUID.fullmatch(value):
        raise NotFound(f"{what} not found: ids are canonical lower-case UUIDs")
    return uuid.UUID(value)


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header: absent, or 1..255 printable ASCII characters (422)."""
    raw = single_headers(request.scope["headers"]).get(b"idempotency-key")
    if raw is None:
        return None
    key = raw.decode("latin-1")
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX or not _VISIBLE.fullmatch(key):
        raise RequestRejected(
            422,
            "validation_error",
            "Idempotency-Key must be 1..255 printable ASCII characters",
            [{"loc": ["header", "idempotency-key"], "msg": "invalid", "type": "string_type"}],
        )
    return key
