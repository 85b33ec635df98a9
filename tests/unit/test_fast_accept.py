"""The accept fast path: it answers the happy path itself, hands every request it does not
fully validate to the FastAPI app with the body intact, and maps later errors like the app."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from core.auth import make_token
from domain.errors import RateLimited
from serve_app.api import accepted
from serve_app.fast_accept import FastAccept

SECRET = "fast-accept-test-secret-of-32-bytes!"
ORDER = {"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 2}]}


class _State:
    def __init__(self, fail: Exception | None = None) -> None:
        self.settings = SimpleNamespace(
            jwt_secret=SECRET, jwt_audience="orders-api", jwt_issuer="orders-demo", jwt_max_age_s=60
        )
        self.placed: list[tuple[str, Any, str | None]] = []
        self._fail = fail

    async def place_order(self, who: Any, cmd: Any, key: str | None) -> tuple[dict[str, Any], bool]:
        if self._fail is not None:
            raise self._fail
        self.placed.append((who.sub, cmd, key))
        return {"orderId": "o-1", "links": {"self": "/api/orders/o-1"}}, key == "again"


def _call(
    body: bytes,
    headers: dict[str, str],
    state: _State,
    method: str = "POST",
    path: str = "/api/orders",
) -> tuple[int, dict[bytes, bytes], bytes, list[bytes]]:
    """Run one request through FastAccept; returns status, headers, body and what the
    downstream app (standing for FastAPI) received as body, if it was called."""
    downstream: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        downstream.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"fastapi"})

    chunks = [body[:5], body[5:]]

    async def receive() -> dict[str, Any]:
        piece = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": piece, "more_body": bool(chunks)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": SimpleNamespace(state=SimpleNamespace(services=state)),
    }
    asyncio.run(FastAccept(app, respond=accepted)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), payload, downstream


def _headers(token: str | None = None, **extra: str) -> dict[str, str]:
    token = token or make_token("customer1", ["customer"], secret=SECRET)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **extra}


def test_it_accepts_a_valid_order_itself() -> None:
    state = _State()
    status, headers, body, downstream = _call(orjson.dumps(ORDER), _headers(), state)
    assert status == 202 and not downstream
    assert orjson.loads(body)["orderId"] == "o-1"
    assert headers[b"location"] == b"/api/orders/o-1"
    assert b"idempotent-replayed" not in headers
    ((sub, cmd, key),) = state.placed
    assert sub == "customer1" and cmd.items[0].qty == 2 and key is None


def test_a_replayed_idempotent_request_says_so() -> None:
    status, headers, _, _ = _call(
        orjson.dumps(ORDER), _headers(**{"Idempotency-Key": "again"}), _State()
    )
    assert status == 202 and headers[b"idempotent-replayed"] == b"true"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (orjson.dumps(ORDER), _headers(token="not-a-jwt")),
        (orjson.dumps(ORDER), {"Content-Type": "application/json"}),
        (orjson.dumps(ORDER), {**_headers(), "Content-Type": "text/plain"}),
        (orjson.dumps({**ORDER, "items": []}), _headers()),
        (b'{"customerId": "c-1", "items": [', _headers()),
        (orjson.dumps(ORDER), _headers(**{"Idempotency-Key": "k" * 256})),
    ],
    ids=["bad-token", "no-token", "not-json", "invalid-body", "broken-json", "long-key"],
)
def test_what_it_does_not_validate_goes_to_the_app_with_the_body(
    body: bytes, headers: dict[str, str]
) -> None:
    state = _State()
    status, _, payload, downstream = _call(body, headers, state)
    assert (status, payload) == (299, b"fastapi")
    assert downstream == [body[:5]] and not state.placed  # first chunk replayed, then the rest


def test_other_routes_are_not_touched() -> None:
    status, _, _, downstream = _call(b"", _headers(), _State(), method="GET")
    assert status == 299 and downstream == [b""]
    status, _, _, _ = _call(orjson.dumps(ORDER), _headers(), _State(), path="/api/orders/x")
    assert status == 299


def test_errors_after_validation_map_like_the_app() -> None:
    status, headers, body, downstream = _call(
        orjson.dumps(ORDER), _headers(), _State(fail=RateLimited("slow down", 7))
    )
    assert status == 429 and not downstream
    assert headers[b"retry-after"] == b"7"
    assert orjson.loads(body)["error"]["code"] == "rate_limited"
