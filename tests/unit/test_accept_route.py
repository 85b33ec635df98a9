"""The gateway in-process (real app, gate, dependencies and error mapping; services faked):
every route reads headers, tokens and bodies with the same rules and answers the same way."""

from __future__ import annotations

import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from core.auth import Principal, make_token
from core.settings import Settings
from domain.commands import PlaceOrder
from domain.errors import RateLimited
from serve_app.api import create_app
from serve_app.models import Readiness
from serve_app.views import accepted_view
from tests.unit import asgi

SECRET = "accept-route-test-secret-of-32-bytes"
ORDER = b'{"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 2}]}'
ORDER_ID = uuid.UUID("0197a3c2-5b1e-7c3d-9f2a-1b2c3d4e5f60")


class _Accept:
    def __init__(self, fail: Exception | None = None) -> None:
        self.placed: list[tuple[str, PlaceOrder, str | None]] = []
        self.fail = fail

    async def place(self, who: Principal, cmd: PlaceOrder, key: str | None) -> Any:
        if self.fail is not None:
            raise self.fail
        self.placed.append((who.sub, cmd, key))
        return accepted_view(ORDER_ID, Decimal("29.00")), key == "again"


class _Ready:
    async def report(self) -> Readiness:
        return Readiness(status="up", checks={"postgres": {"status": "up", "pid": 7}})


def _call(
    method: str, path: str, *, headers: Any = (), content: bytes | None = None, fail: Any = None
) -> tuple[httpx.Response, _Accept]:
    app = create_app(with_ray=False)
    accept = _Accept(fail)
    settings = Settings(jwt_secret=SECRET)
    app.state.services = SimpleNamespace(settings=settings, accept=accept, readiness=_Ready())

    return asgi.request(app, method, path, headers=list(headers), content=content), accept


def _auth(sub: str = "customer1", *roles: str) -> tuple[str, str]:
    token = make_token(sub, list(roles or ["customer"]), secret=SECRET)
    return ("Authorization", f"Bearer {token}")


JSON = ("Content-Type", "application/json")


def test_a_valid_order_is_accepted_with_location_and_no_store() -> None:
    resp, accept = _call("POST", "/api/orders", headers=[_auth(), JSON], content=ORDER)
    assert resp.status_code == 202, resp.text
    assert resp.json()["orderId"] == str(ORDER_ID) and resp.json()["links"]["self"]
    assert resp.headers["location"] == f"/api/orders/{ORDER_ID}"
    assert resp.headers["cache-control"] == "no-store"
    assert "idempotent-replayed" not in resp.headers
    ((sub, cmd, key),) = accept.placed
    assert sub == "customer1" and cmd.items[0].qty == 2 and key is None


def test_a_replayed_idempotent_request_says_so() -> None:
    headers = [_auth(), JSON, ("Idempotency-Key", "again")]
    resp, _ = _call("POST", "/api/orders", headers=headers, content=ORDER)
    assert resp.status_code == 202 and resp.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ([_auth(), _auth("other"), JSON], ORDER, 400, "duplicate_header"),
        ([_auth(), JSON, JSON], ORDER, 400, "duplicate_header"),
        ([_auth(), JSON, ("Idempotency-Key", "a"), ("Idempotency-Key", "b")], ORDER, 400, None),
        ([_auth(), ("Content-Type", "text/plain")], ORDER, 415, "unsupported_media_type"),
        ([_auth(), ("Content-Type", "application/jsonx")], ORDER, 415, None),
        ([_auth(), ("Content-Type", "application/json; charset=latin-1")], ORDER, 415, None),
        ([_auth()], b"", 415, "unsupported_media_type"),
        ([JSON], ORDER, 401, "unauthorized"),
        ([("Authorization", "Basic dXNlcjpwYXNz"), JSON], ORDER, 401, "unauthorized"),
        ([_auth("x", "root"), JSON], ORDER, 403, "forbidden"),
        ([_auth(), JSON], ORDER[:-1] + b', "customerId": "c-2"}', 400, "invalid_json"),
        ([_auth(), JSON], b'{"customerId": NaN}', 400, "invalid_json"),
        ([_auth(), JSON], b'{"customerId": "c-1", "items": []}', 422, "validation_error"),
        ([_auth(), JSON, ("Idempotency-Key", "k" * 256)], ORDER, 422, "validation_error"),
    ],
    ids=[
        "two-authorization",
        "two-content-types",
        "two-idempotency-keys",
        "text-plain",
        "jsonx",
        "latin-1",
        "no-content-type",
        "no-token",
        "basic-auth",
        "unknown-role",
        "duplicate-key",
        "nan",
        "no-items",
        "long-key",
    ],
)
def test_odd_requests_get_one_clear_4xx_and_store_nothing(
    headers: list[tuple[str, str]], body: bytes, status: int, code: str | None
) -> None:
    resp, accept = _call("POST", "/api/orders", headers=headers, content=body)
    assert resp.status_code == status, resp.text
    assert code is None or resp.json()["error"]["code"] == code
    assert resp.headers["cache-control"] == "no-store"
    assert not accept.placed


def test_a_duplicate_authorization_header_is_400_on_every_route() -> None:
    headers = [_auth(), _auth("customer2")]
    for method, path in (
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", f"/api/orders/{ORDER_ID}"),
        ("GET", "/api/nothing-here"),
        ("POST", "/api/orders"),
    ):
        resp, _ = _call(method, path, headers=headers)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["error"]["code"] == "duplicate_header"


def test_a_body_that_is_not_json_is_415_on_any_route() -> None:
    resp, _ = _call("GET", "/health", headers=[("Content-Type", "text/plain")], content=b"x")
    assert resp.status_code == 415


def test_errors_after_validation_map_like_every_route() -> None:
    resp, _ = _call(
        "POST", "/api/orders", headers=[_auth(), JSON], content=ORDER, fail=RateLimited("slow", 7)
    )
    assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
    assert resp.json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/orders/{str(ORDER_ID).upper()}",
        f"/api/orders/{ORDER_ID.hex}",
        f"/api/orders/{{{ORDER_ID}}}",
        f"/api/orders/urn:uuid:{ORDER_ID}",
        "/api/orders/not-a-uuid",
    ],
)
def test_non_canonical_order_ids_are_404(path: str) -> None:
    resp, _ = _call("GET", path, headers=[_auth()])
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_readiness_details_only_for_admins_metrics_only_for_admins() -> None:
    anonymous, _ = _call("GET", "/ready")
    assert anonymous.json() == {"status": "up"}
    customer, _ = _call("GET", "/ready", headers=[_auth()])
    assert customer.json() == {"status": "up"}
    admin, _ = _call("GET", "/ready", headers=[_auth("ops", "admin")])
    assert admin.json()["checks"]["postgres"]["pid"] == 7
    assert _call("GET", "/ready", headers=[("Authorization", "Bearer x.y.z")])[0].status_code == 401
    assert _call("GET", "/metrics")[0].status_code == 401
    assert _call("GET", "/metrics", headers=[_auth()])[0].status_code == 403


def test_openapi_declares_the_error_envelope_not_fastapis_422() -> None:
    spec = create_app(with_ray=False).openapi()
    place = spec["paths"]["/api/orders"]["post"]
    assert place["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PlaceOrder"
    }
    for status in ("400", "401", "403", "415", "422", "429", "503"):
        schema = place["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, status
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["Accepted"]["properties"]["orderId"]
