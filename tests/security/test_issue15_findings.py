"""Issue 15's gateway findings, each as the attack that found it: the exact 4xx it must get now,
and nothing stored (no order, no claimed customer id, the victim's order untouched)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.integration.conftest import wait_until
from tests.security.cases import Case, Request, check_answer, ids, order, run, send
from tests.security.conftest import JSON, Tokens, World, bearer

NOW = int(time.time())
_THREE_YEARS = 3 * 365 * 86_400


def _raw(w: World, **fields: str) -> tuple[str, str]:
    """A token of the attacker signed with the stack's secret, with raw JSON `fields`."""
    return bearer(w.tokens.raw(w.tokens.claims(**{"sub": f'"{w.attacker}"', **fields})))


def _dup_payload(w: World, extra: str) -> tuple[str, str]:
    """A token whose payload repeats a key: `extra` is appended after the attacker's claims."""
    payload = w.tokens.claims(sub=f'"{w.attacker}"')[:-1] + "," + extra + "}"
    return bearer(w.tokens.raw(payload))


FINDINGS: list[Case] = [
    # 3. a customer orders for a customer id it does not own
    Case("3-victims-customer-id", lambda w: order(w, w.order_body(w.victim)), 403, "forbidden"),
    Case("3-seeded-c-1", lambda w: order(w, w.order_body("c-1")), 403, "forbidden"),
    # 4. NUL (and other control characters) in sub or roles
    Case(
        "4-nul-in-sub-list",
        lambda w: Request(
            "GET", "/api/orders", [bearer(w.tokens.raw(w.tokens.claims(sub='"cust\\u0000omer"')))]
        ),
        401,
        "unauthorized",
    ),
    Case(
        "4-nul-in-sub-place",
        lambda w: order(w, w.order_body(), _raw(w, sub='"a\\u0000b"')),
        401,
        "unauthorized",
    ),
    Case(
        "4-nul-in-role",
        lambda w: order(w, w.order_body(), _raw(w, roles='["customer\\u0000"]')),
        401,
        "unauthorized",
    ),
    Case(
        "4-newline-in-sub",
        lambda w: order(w, w.order_body(), _raw(w, sub='"a\\nb"')),
        401,
        "unauthorized",
    ),
    Case(
        "4-sub-too-long",
        lambda w: order(w, w.order_body(), _raw(w, sub='"' + "s" * 129 + '"')),
        401,
        "unauthorized",
    ),
    # 6. non-finite or non-integer times; a lifetime past JWT_MAX_AGE_S
    Case("6-iat-nan", lambda w: order(w, w.order_body(), _raw(w, iat="NaN")), 401),
    Case("6-exp-nan", lambda w: order(w, w.order_body(), _raw(w, exp="NaN")), 401),
    Case("6-exp-infinity", lambda w: order(w, w.order_body(), _raw(w, exp="Infinity")), 401),
    Case("6-nbf-nan", lambda w: order(w, w.order_body(), _raw(w, nbf="NaN")), 401),
    Case("6-iat-float", lambda w: order(w, w.order_body(), _raw(w, iat=f"{NOW}.25")), 401),
    Case(
        "6-exp-far-iat-three-years-old",
        lambda w: order(
            w, w.order_body(), _raw(w, iat=str(NOW - _THREE_YEARS), exp=str(NOW + 10**9))
        ),
        401,
        "unauthorized",
    ),
    # 7. duplicate keys (token and body), bodies that are not application/json
    Case(
        "7-duplicate-sub-in-token",
        lambda w: order(w, w.order_body(w.victim), _dup_payload(w, f'"sub":"{w.victim}"')),
        401,
        "unauthorized",
    ),
    Case(
        "7-duplicate-roles-in-token",
        lambda w: order(w, w.order_body(), _dup_payload(w, '"roles":["admin"]')),
        401,
        "unauthorized",
    ),
    Case(
        "7-duplicate-alg-in-token-header",
        lambda w: order(
            w,
            w.order_body(),
            bearer(
                w.tokens.raw(
                    w.tokens.claims(sub=f'"{w.attacker}"'), header='{"alg":"none","alg":"HS256"}'
                )
            ),
        ),
        401,
        "unauthorized",
    ),
    Case(
        "7-duplicate-key-in-body",
        lambda w: order(
            w,
            b'{"customerId":"%s","customerId":"%s","items":[{"sku":"SKU-5","qty":1}]}'
            % (w.fresh_customer.encode(), w.victim.encode()),
        ),
        400,
        "invalid_json",
    ),
    Case(
        "7-duplicate-qty-in-body",
        lambda w: order(
            w,
            b'{"customerId":"%s","items":[{"sku":"SKU-5","qty":1,"qty":900}]}'
            % w.fresh_customer.encode(),
        ),
        400,
        "invalid_json",
    ),
    Case(
        "7-text-plain",
        lambda w: order(w, w.order_body(), ("Content-Type", "text/plain")),
        415,
        "unsupported_media_type",
    ),
    Case(
        "7-application-jsonx",
        lambda w: order(w, w.order_body(), ("Content-Type", "application/jsonx")),
        415,
        "unsupported_media_type",
    ),
    Case(
        "7-form-urlencoded",
        lambda w: order(w, w.order_body(), ("Content-Type", "application/x-www-form-urlencoded")),
        415,
        "unsupported_media_type",
    ),
]


@pytest.mark.parametrize("case", FINDINGS, ids=ids(FINDINGS))
def test_finding_is_refused_and_nothing_stored(
    http: httpx.Client, world: World, unchanged: Any, case: Case
) -> None:
    run(http, case, world, unchanged)


def _routes(w: World) -> list[tuple[str, str]]:
    oid = w.victim_order
    return [
        ("POST", "/api/orders"),
        ("GET", "/api/orders"),
        ("GET", f"/api/orders/{oid}"),
        ("POST", f"/api/orders/{oid}/cancel"),
        ("GET", f"/api/orders/{oid}/events"),
        ("GET", "/api/inventory/SKU-5"),
        ("PUT", "/api/inventory/SKU-5"),
        ("POST", "/api/admin/faults"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/no-such-route"),
    ]


@pytest.mark.parametrize("admin_first", [True, False], ids=["admin-first", "admin-last"])
def test_5_two_authorization_headers_are_400_on_every_route(
    http: httpx.Client, world: World, unchanged: Any, admin_first: bool
) -> None:
    """Finding 5: the route acted as the first header, the fast path as the last. Now every
    path answers 400 before reading either; with an admin token among them nothing happens."""
    admin, customer = world.as_attacker("admin"), world.as_attacker()
    pair = [admin, customer] if admin_first else [customer, admin]
    for method, path in _routes(world):
        check = unchanged(world)
        body = b'{"onHand": 0}' if method == "PUT" else None
        resp = send(http, Request(method, path, [*pair, JSON], body))
        check_answer(resp, 400, "duplicate_header", f"{method} {path}")
        check()


def test_3_racing_principals_claim_a_new_customer_id_once(
    settings: Any, tokens: Tokens, pg: Any
) -> None:
    """Finding 3 under concurrency: 30 principals race (three orders each) for one new id."""
    customer = f"race-{uuid.uuid4().hex[:10]}"
    racers = [f"racer-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    body = {"customerId": customer, "items": [{"sku": "SKU-5", "qty": 1}]}

    async def fire() -> list[tuple[str, int]]:
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def one(sub: str) -> tuple[str, int]:
                resp = await client.post(
                    "/api/orders", json=body, headers=[bearer(tokens.mint(sub))]
                )
                return sub, resp.status_code

            return await asyncio.gather(*(one(s) for s in racers * 3))

    answers = asyncio.run(fire())
    codes = Counter(code for _, code in answers)
    assert set(codes) == {202, 403}, codes
    winners = {sub for sub, code in answers if code == 202}
    assert len(winners) == 1 and codes[202] == 3, answers
    (owner,) = pg.execute(
        "SELECT principal FROM customer_owners WHERE customer_id = %s", (customer,)
    ).fetchall()
    assert owner["principal"] in winners
    stored = pg.execute(
        "SELECT principal, count(*) AS n FROM orders WHERE customer_id = %s GROUP BY principal",
        (customer,),
    ).fetchall()
    assert stored == [{"principal": owner["principal"], "n": 3}]


def test_3_admins_act_for_any_customer_id_and_claim_nothing(
    http: httpx.Client, world: World, pg: Any
) -> None:
    resp = http.post(
        "/api/orders", json=world.order_body(world.victim), headers=[world.as_attacker("admin")]
    )
    assert resp.status_code == 202, resp.text
    fresh = http.post("/api/orders", json=world.order_body(), headers=[world.as_attacker("admin")])
    assert fresh.status_code == 202, fresh.text
    owners = pg.execute(
        "SELECT customer_id FROM customer_owners WHERE customer_id = %s", (world.fresh_customer,)
    ).fetchall()
    assert owners == []  # an admin acting for an id does not take it


def test_7_authenticated_answers_are_never_cached(http: httpx.Client, world: World) -> None:
    me = world.as_attacker()
    placed = http.post("/api/orders", json=world.order_body(), headers=[me])
    answers = [
        placed,
        http.get(placed.headers["location"], headers=[me]),
        http.get("/api/orders", headers=[me]),
        http.get("/api/inventory/SKU-5", headers=[me]),
        http.get(f"/api/orders/{uuid.uuid4()}", headers=[me]),
        http.get("/api/orders", headers=[("Authorization", "Bearer x.y.z")]),
    ]
    assert [a.status_code for a in answers] == [202, 200, 200, 200, 404, 401]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_8_ready_and_metrics_show_no_deployment_details_without_admin(
    http: httpx.Client, world: World
) -> None:
    anonymous = http.get("/ready")  # 200 or, while Postgres is down, 503: same shape
    assert anonymous.status_code in (200, 503) and set(anonymous.json()) == {"status"}
    customer = http.get("/ready", headers=[world.as_attacker()])
    assert set(customer.json()) == {"status"}
    admin = http.get("/ready", headers=[world.as_attacker("admin")])
    assert "checks" in admin.json()
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=[world.as_attacker()]).status_code == 403
    assert http.get("/metrics", headers=[world.as_attacker("admin")]).status_code == 200


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_8_ingress_stats_page_is_not_served_without_auth() -> None:
    """HAProxy's stats page (on the port the stack gave it: RAY_SERVE_HAPROXY_STATS_PORT,
    default 8404, cluster/common.sh) answers only the operator."""
    port = int(os.environ.get("RAY_SERVE_HAPROXY_STATS_PORT") or 8404)
    wait_until(lambda: _listens(port), timeout=30, what=f"HAProxy's stats page on :{port}")
    url = f"http://127.0.0.1:{port}/stats"
    resp = httpx.get(url, timeout=10)
    assert resp.status_code in (401, 403), resp.status_code
    # the operator still reads it, with the page's own password (cluster/haproxy.sh), and the
    # Ray token, which runs code on the cluster, is not it
    ok = httpx.get(url, auth=("ops", os.environ["HAPROXY_STATS_PASSWORD"]), timeout=10)
    assert ok.status_code == 200
    token = httpx.get(url, auth=("ops", os.environ["RAY_AUTH_TOKEN"]), timeout=10)
    assert token.status_code in (401, 403)
