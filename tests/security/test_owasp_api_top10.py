"""OWASP API Security Top 10 (2023), the items that apply to this gateway, as hostile requests
with the exact answer each must get and nothing stored. API7 (SSRF) does not apply: no route
fetches anything a client names (ids, skus and payment methods are validated tokens, never
URLs)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.security.cases import Case, Request, check_answer, ids, order, run, send
from tests.security.conftest import JSON, World, bearer

NOW = int(time.time())


def _jwt(w: World, key: str | None = None, alg: str = "HS256", **claims: Any) -> tuple[str, str]:
    """A PyJWT-made token of the attacker with `claims` changed (None removes a claim)."""
    s = w.tokens.settings
    body: dict[str, Any] = {
        "sub": w.attacker,
        "roles": ["customer"],
        "aud": s.jwt_audience,
        "iss": s.jwt_issuer,
        "iat": NOW,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return bearer(jwt.encode(body, key if key is not None else s.jwt_secret, algorithm=alg))


def _get(path: str, *roles: str) -> Any:
    return lambda w: Request("GET", path.format(w=w), [w.as_attacker(*roles)])


API1_BOLA = [
    Case(
        "api1-read-another-customers-order", _get("/api/orders/{w.victim_order}"), 404, "not_found"
    ),
    Case(
        "api1-cancel-another-customers-order",
        lambda w: Request("POST", f"/api/orders/{w.victim_order}/cancel", [w.as_attacker()]),
        404,
        "not_found",
    ),
    Case("api1-stream-another-customers-order", _get("/api/orders/{w.victim_order}/events"), 404),
    Case("api1-order-for-another-customer-id", lambda w: order(w, w.order_body(w.victim)), 403),
]

API2_BROKEN_AUTH = [
    Case(
        "api2-no-token",
        lambda w: Request("POST", "/api/orders", [JSON], b'{"customerId":"x","items":[]}'),
        401,
        "unauthorized",
    ),
    Case(
        "api2-empty-authorization", lambda w: order(w, w.order_body(), ("Authorization", "")), 401
    ),
    Case(
        "api2-basic-auth",
        lambda w: order(w, w.order_body(), ("Authorization", "Basic YTpi")),
        401,
    ),
    Case("api2-wrong-secret", lambda w: order(w, w.order_body(), _jwt(w, key="guess")), 401),
    Case("api2-alg-none", lambda w: order(w, w.order_body(), _jwt(w, key="", alg="none")), 401),
    Case("api2-alg-hs384", lambda w: order(w, w.order_body(), _jwt(w, alg="HS384")), 401),
    Case("api2-expired", lambda w: order(w, w.order_body(), _jwt(w, exp=NOW - 120)), 401),
    Case(
        "api2-no-exp-too-old",
        lambda w: order(w, w.order_body(), _jwt(w, iat=NOW - 2 * 86_400)),
        401,
    ),
    Case(  # the time taken when the case runs: the suite may take an hour to get here
        "api2-issued-in-future",
        lambda w: order(w, w.order_body(), _jwt(w, iat=int(time.time()) + 3600)),
        401,
    ),
    Case("api2-other-audience", lambda w: order(w, w.order_body(), _jwt(w, aud="other")), 401),
    Case("api2-other-issuer", lambda w: order(w, w.order_body(), _jwt(w, iss="other")), 401),
    Case("api2-no-iat", lambda w: order(w, w.order_body(), _jwt(w, iat=None)), 401),
    Case("api2-huge-token", lambda w: order(w, w.order_body(), _jwt(w, pad="p" * 5000)), 401),
]


def _mass_assign(field: str, value: object) -> Callable[[World], Request]:
    """An order whose body also sets `field` (not a field of the API) to `value`."""
    extra: dict[str, Any] = {field: value}
    return lambda w: order(w, w.order_body(**extra))


API3_BOPLA = [
    Case(
        f"api3-mass-assign-{field}",
        _mass_assign(field, value),
        422,
        "validation_error",
    )
    for field, value in (
        ("status", "PAID"),
        ("total", 0.01),
        ("principal", "admin"),
        ("orderId", str(uuid.uuid4())),
        ("currency", "XXX"),
    )
] + [
    Case(
        "api3-mass-assign-unit-price",
        lambda w: order(
            w, {**w.order_body(), "items": [{"sku": "SKU-5", "qty": 1, "unitPrice": 0}]}
        ),
        422,
        "validation_error",
    ),
    Case(
        "api3-put-reserved",
        lambda w: Request(
            "PUT",
            "/api/inventory/SKU-5",
            [w.as_attacker("admin"), JSON],
            b'{"onHand": 1000000, "reserved": 0}',
        ),
        422,
        "validation_error",
    ),
]


def _nested(depth: int) -> bytes:
    return b'{"customerId":"x","items":' + b"[" * depth + b"]" * depth + b"}"


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // 8192):
        yield b" " * 8192


API4_RESOURCES = [
    Case(
        "api4-declared-body-over-limit",
        lambda w: order(w, b'{"customerId":"x","items":[' + b" " * 200_000 + b"]}"),
        413,
        "payload_too_large",
    ),
    Case(
        "api4-101-items",
        lambda w: order(w, w.order_body(items=[{"sku": "SKU-5", "qty": 1}] * 101)),
        422,
        "validation_error",
    ),
    Case(
        "api4-qty-over-1000",
        lambda w: order(w, w.order_body(items=[{"sku": "SKU-5", "qty": 1001}])),
        422,
        "validation_error",
    ),
    Case("api4-nesting-20000-deep", lambda w: order(w, _nested(20_000)), 400, "invalid_json"),
    Case(
        "api4-integer-of-5000-digits",
        lambda w: order(
            w, b'{"customerId":"x","items":[{"sku":"SKU-5","qty":' + b"9" * 5000 + b"}]}"
        ),
        400,
        "invalid_json",
    ),
    Case(
        "api4-idempotency-key-256-chars",
        lambda w: order(w, w.order_body(), JSON, ("Idempotency-Key", "k" * 256)),
        422,
        "validation_error",
    ),
    Case("api4-list-limit-101", _get("/api/orders?limit=101"), 422, "validation_error"),
    Case("api4-list-limit-0", _get("/api/orders?limit=0"), 422, "validation_error"),
    Case("api4-long-cursor", _get("/api/orders?cursor=" + "c" * 201), 422, "validation_error"),
]

API5_BFLA = [
    Case(
        "api5-customer-sets-stock",
        lambda w: Request("PUT", "/api/inventory/SKU-5", [w.as_attacker(), JSON], b'{"onHand":0}'),
        403,
        "forbidden",
    ),
    Case(
        "api5-anonymous-sets-stock",
        lambda w: Request("PUT", "/api/inventory/SKU-5", [JSON], b'{"onHand":0}'),
        401,
        "unauthorized",
    ),
    Case(
        "api5-unknown-role-sets-stock",
        lambda w: Request(
            "PUT", "/api/inventory/SKU-5", [w.as_attacker("superuser"), JSON], b'{"onHand":0}'
        ),
        403,
        "forbidden",
    ),
    Case(
        "api5-capitalised-admin-role",
        lambda w: Request(
            "PUT",
            "/api/inventory/SKU-5",
            [w.as_attacker("customer", "Admin"), JSON],
            b'{"onHand":0}',
        ),
        403,
        "forbidden",
    ),
    Case(
        "api5-customer-injects-faults",
        lambda w: Request(
            "POST",
            "/api/admin/faults",
            [w.as_attacker(), JSON],
            b'{"fault":"payment-provider","enabled":true}',
        ),
        403,
        "forbidden",
    ),
    Case("api5-customer-reads-metrics", _get("/metrics"), 403, "forbidden"),
]

API8_MISCONFIGURATION = [
    Case("api8-trace", lambda w: Request("TRACE", "/api/orders"), 405, "method_not_allowed"),
    Case("api8-unknown-route", lambda w: Request("GET", "/api/debug"), 404, "not_found"),
    Case(
        "api8-cors-preflight-from-anywhere",
        lambda w: Request(
            "OPTIONS",
            "/api/orders",
            [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")],
        ),
        405,
        "method_not_allowed",
    ),
]

API9_INVENTORY = [
    Case("api9-undocumented-version-prefix", _get("/api/v1/orders"), 404, "not_found"),
    Case("api9-undocumented-admin-route", _get("/api/admin/users", "admin"), 404, "not_found"),
    Case(
        "api9-undocumented-method",
        lambda w: Request("DELETE", f"/api/orders/{w.victim_order}", [w.as_attacker("admin")]),
        405,
        "method_not_allowed",
    ),
]

CASES = (
    API1_BOLA
    + API2_BROKEN_AUTH
    + API3_BOPLA
    + API4_RESOURCES
    + API5_BFLA
    + API8_MISCONFIGURATION
    + API9_INVENTORY
)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_owasp_case_gets_its_exact_answer_and_stores_nothing(
    http: httpx.Client, world: World, unchanged: Any, case: Case
) -> None:
    run(http, case, world, unchanged)


def test_api1_a_customer_listing_by_another_customer_id_sees_nothing(
    http: httpx.Client, world: World
) -> None:
    resp = http.get(
        "/api/orders", params={"customerId": world.victim}, headers=[world.as_attacker()]
    )
    assert resp.status_code == 200 and resp.json()["items"] == []


def test_api3_an_order_shows_no_internal_fields(http: httpx.Client, world: World) -> None:
    me = world.as_attacker()
    placed = http.post("/api/orders", json=world.order_body(), headers=[me])
    body = http.get(placed.headers["location"], headers=[me]).json()
    assert set(body) <= {
        "orderId",
        "customerId",
        "status",
        "items",
        "total",
        "currency",
        "paymentMethod",
        "createdAt",
        "updatedAt",
        "reason",
        "timeline",
    }, body


def test_api4_a_chunked_body_over_the_limit_is_413(
    http: httpx.Client, world: World, unchanged: Any
) -> None:
    check = unchanged(world)
    resp = http.post("/api/orders", content=_chunks(200_000), headers=[world.as_attacker(), JSON])
    check_answer(resp, 413, "payload_too_large", "chunked")
    check()


def test_api5_a_refused_stock_write_changes_no_stock(http: httpx.Client, world: World) -> None:
    """The refused write would raise the stock past anything it was; orders still on their way
    (api3's, a test before) may only lower it meanwhile, when they ship."""
    admin = [world.as_attacker("admin")]
    before = http.get("/api/inventory/SKU-5", headers=admin).json()["onHand"]
    wanted = {"onHand": before + 100_000}
    resp = http.put("/api/inventory/SKU-5", json=wanted, headers=[world.as_attacker()])
    assert resp.status_code == 403
    assert http.get("/api/inventory/SKU-5", headers=admin).json()["onHand"] <= before


def test_api6_ordering_past_the_rate_limit_is_429_and_stores_nothing(
    http: httpx.Client, world: World, unchanged: Any, rds: Any, settings: Any
) -> None:
    window = int(time.time() // 60)
    for w in (window, window + 1):  # the minute may turn during the request
        rds.set(f"ratelimit:{world.attacker}:{w}", settings.rate_limit_per_min, ex=180)
    check = unchanged(world)
    resp = send(http, order(world, world.order_body()))
    check_answer(resp, 429, "rate_limited", "rate limit")
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    check()


def test_api8_answers_carry_security_headers_and_no_versions(http: httpx.Client) -> None:
    for resp in (http.get("/health"), http.get("/api/orders"), http.get("/nothing")):
        assert resp.headers["cache-control"] == "no-store"
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in resp.headers
        assert not any(ch.isdigit() for ch in resp.headers.get("server", ""))


def test_api9_every_served_route_is_documented(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["info"]["version"]
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {
        ("POST", "/api/orders"),
        ("GET", "/api/orders"),
        ("GET", "/api/orders/{order_id}"),
        ("POST", "/api/orders/{order_id}/cancel"),
        ("GET", "/api/orders/{order_id}/events"),
        ("GET", "/api/inventory/{sku}"),
        ("PUT", "/api/inventory/{sku}"),
        ("POST", "/api/admin/faults"),
        ("GET", "/metrics"),
        ("GET", "/health"),
        ("GET", "/ready"),
    }


def test_api10_a_corrupt_idempotency_entry_in_redis_is_not_trusted(
    http: httpx.Client, world: World, rds: Any, pg: Any
) -> None:
    """The gateway consumes Redis (the Idempotency-Key cache): what it reads back is checked
    like input; Postgres, which keeps one order per key, decides."""
    key = f"k-{uuid.uuid4()}"
    redis_key = f"idem:{world.attacker}:{hashlib.sha256(key.encode()).hexdigest()}"
    rds.set(redis_key, '{"state":"done","hash":1,"response":{"orderId":"../../etc"}}', ex=60)
    headers = [world.as_attacker(), ("Idempotency-Key", key)]
    first = http.post("/api/orders", json=world.order_body(), headers=headers)
    again = http.post("/api/orders", json=world.order_body(), headers=headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert first.json()["orderId"] == again.json()["orderId"]
    n = pg.execute("SELECT count(*) AS n FROM orders WHERE principal = %s", (world.attacker,))
    assert n.fetchone()["n"] == 1
