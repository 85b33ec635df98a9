"""Auth rules of the contract, through the real gateway."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from core.auth import make_token
from core.settings import Settings
from tests.claims import seed_claims
from tests.integration.conftest import wait_until

SEED_BODY = {"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 2}]}


def test_seed_quickstart_token_and_body_get_202(http: httpx.Client, settings: Settings) -> None:
    token = jwt.encode(seed_claims(), settings.jwt_secret, algorithm="HS256")  # the seed's recipe
    resp = http.post("/api/orders", json=SEED_BODY, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "PENDING"
    assert resp.headers["location"] == f"/api/orders/{body['orderId']}"


@pytest.mark.parametrize(
    ("make_header", "status"),
    [
        (lambda s: None, 401),
        (lambda s: "Bearer", 401),
        (lambda s: "Basic dXNlcjpwYXNz", 401),
        (lambda s: "Bearer not.a.jwt", 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(), "wrong-secret", algorithm="HS256"), 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(), "", algorithm="none"), 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(), s, algorithm="HS384"), 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(aud="x"), s, algorithm="HS256"), 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(iss="x"), s, algorithm="HS256"), 401),
        (
            lambda s: (
                "Bearer "
                + jwt.encode(seed_claims(exp=int(time.time()) - 120), s, algorithm="HS256")
            ),
            401,
        ),
        (
            lambda s: (
                "Bearer "
                + jwt.encode(seed_claims(iat=int(time.time()) - 2 * 86_400), s, algorithm="HS256")
            ),
            401,
        ),
        (
            lambda s: (
                "Bearer "
                + jwt.encode(seed_claims(iat=int(time.time()) + 3600), s, algorithm="HS256")
            ),
            401,
        ),
        (lambda s: "Bearer " + jwt.encode(seed_claims(sub=None), s, algorithm="HS256"), 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(roles=None), s, algorithm="HS256"), 401),
        (lambda s: "Bearer " + jwt.encode(seed_claims(roles=["root"]), s, algorithm="HS256"), 403),
    ],
)
def test_bad_tokens_are_refused_with_json_and_nothing_stored(
    http: httpx.Client,
    settings: Settings,
    pg: object,
    make_header: Callable[[str], str | None],
    status: int,
) -> None:
    header = make_header(settings.jwt_secret)
    before = _count_orders(pg)
    resp = http.post(
        "/api/orders", json=SEED_BODY, headers={"Authorization": header} if header else {}
    )
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] in {"unauthorized", "forbidden"}
    assert settings.jwt_secret not in resp.text and "Traceback" not in resp.text
    assert _count_orders(pg) == before


def test_customer_cannot_use_admin_routes(http: httpx.Client, mint: Callable[..., str]) -> None:
    headers = {"Authorization": f"Bearer {mint('customer1')}"}
    resp = http.put("/api/inventory/SKU-1", json={"onHand": 5}, headers=headers)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "forbidden"
    resp = http.post(
        "/api/admin/faults", json={"fault": "payment-provider", "enabled": True}, headers=headers
    )
    assert resp.status_code == 403


def test_health_ready_and_docs_need_no_token_details_need_admin(
    http: httpx.Client,
    admin_headers: dict[str, str],
    mint: Callable[..., str],
    settings: Settings,
) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    # no token needed, but one that is sent must pass, as on every other route
    forged = make_token(
        "customer1",
        ["customer"],
        secret="not-the-secret",
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    for bad in ("Bearer garbage", f"Bearer {forged}"):
        resp = http.get("/health", headers={"Authorization": bad})
        assert resp.status_code == 401, (bad, resp.text)
    # (earlier tests kill and restart actors: wait for the stack to settle before reading it)
    wait_until(
        lambda: http.get("/ready", headers=admin_headers).json()["status"] == "up",
        timeout=60,
        what="/ready up",
    )
    assert http.get("/ready").json() == {"status": "up"}  # no node, pid or version to see
    customer = {"Authorization": f"Bearer {mint('customer1')}"}
    assert http.get("/ready", headers=customer).json() == {"status": "up"}
    ready = http.get("/ready", headers=admin_headers).json()
    assert ready["status"] == "up", ready
    for part in (
        "postgres",
        "redis",
        "kafka",
        "relay",
        "consumer:inventory",
        "consumer:payment",
        "consumer:shipping",
        "consumer:notification",
    ):
        assert ready["checks"][part]["status"] == "up", (part, ready)
    # the relay's scan floor (actors/outbox_floor.py) never passed a row it had not published
    assert ready["checks"]["relay"]["floorResets"] == 0, ready
    # every group runs inside the actors that own its effects (ADR-006): a member's health
    # comes with its host's own fields; a group of several members lists each one
    for group, field, n in (
        ("inventory", "skus", settings.inventory_shards),
        ("payment", "customers", settings.payment_shards),
        ("shipping", "pending", 1),
    ):
        check = ready["checks"][f"consumer:{group}"]
        assert check["group"] == group, ready
        members = check["members"] if n > 1 else [check]
        assert len(members) == n, ready
        assert all(m["group"] == group and field in m for m in members), ready
    if settings.inventory_shards > 1:
        shards = [m["shard"] for m in ready["checks"]["consumer:inventory"]["members"]]
        assert shards == list(range(settings.inventory_shards)), ready
    assert "sent" in ready["checks"]["consumer:notification"], ready
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=customer).status_code == 403
    assert http.get("/metrics", headers=admin_headers).status_code == 200
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert "/api/orders" in spec["paths"] and "/api/orders/{order_id}/events" in spec["paths"]


def _count_orders(pg: object) -> int:
    row = pg.execute("SELECT count(*) AS n FROM orders").fetchone()  # type: ignore[attr-defined]
    return int(row["n"])
