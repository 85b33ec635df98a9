"""Object- and function-level authorization, listing, idempotency, rate limits, live status."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from typing import Any

import httpx

from tests.integration.conftest import Api, scratch_order, wait_until


def test_a_customer_never_sees_or_touches_another_customers_order(
    api: Api,
    customer: str,
) -> None:
    order_id = api.place_ok(customer, [("SKU-6", 1)])
    stranger = api.headers(f"other-{uuid.uuid4().hex[:8]}")
    for method, path in (
        ("GET", f"/api/orders/{order_id}"),
        ("POST", f"/api/orders/{order_id}/cancel"),
        ("GET", f"/api/orders/{order_id}/events"),
    ):
        resp = api.http.request(method, path, headers=stranger)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "not_found"
    listing = api.http.get("/api/orders", headers=stranger).json()
    assert all(o["orderId"] != order_id for o in listing["items"])
    assert api.http.get(f"/api/orders/{order_id}", headers=api.admin).status_code == 200


def test_an_order_an_admin_places_for_a_customers_id_is_that_customers(
    api: Api, customer: str
) -> None:
    """Admins act for anyone: an order placed for `c-1` by support is customer1's order. It was
    visible only to the admin that placed it (404 to the id's owner, missing from its list)."""
    api.place_ok(customer, [("SKU-6", 1)])  # `customer` owns its id
    body = {"customerId": customer, "items": [{"sku": "SKU-6", "qty": 1}]}
    resp = api.http.post("/api/orders", json=body, headers=api.admin)
    assert resp.status_code == 202, resp.text
    order_id = resp.json()["orderId"]
    mine = api.headers(customer)
    got = api.http.get(f"/api/orders/{order_id}", headers=mine)
    assert got.status_code == 200, got.text
    assert all("by" not in (t.get("detail") or {}) for t in got.json()["timeline"])
    listing = api.http.get("/api/orders", params={"limit": 100}, headers=mine).json()
    assert order_id in [o["orderId"] for o in listing["items"]]
    assert api.http.get(f"/api/orders/{order_id}/events", headers=mine).status_code in (200, 204)
    stranger = api.headers(f"other-{uuid.uuid4().hex[:8]}")
    for method, path in (
        ("GET", f"/api/orders/{order_id}"),
        ("POST", f"/api/orders/{order_id}/cancel"),
    ):
        assert api.http.request(method, path, headers=stranger).status_code == 404
    listing = api.http.get("/api/orders", headers=stranger).json()
    assert all(o["orderId"] != order_id for o in listing["items"])


def test_its_customer_cancels_an_order_an_admin_placed_for_it_once_it_owned_the_id(
    api: Api, customer: str, pg: Any
) -> None:
    """Admins claim no id: an admin's order for an id nobody owned stays the admin's, or the
    first customer to order for that id would gain it (read, follow, cancel)."""
    before, after = (scratch_order(pg, "admin1", "RESERVED") for _ in range(2))
    pg.execute("UPDATE orders SET customer_id = %s WHERE id = %s", (customer, before))
    api.place_ok(customer, [("SKU-6", 1)])  # `customer` claims its id now
    pg.execute(
        "UPDATE orders SET customer_id = %s, created_at = now() WHERE id = %s", (customer, after)
    )
    mine = api.headers(customer)
    for method, path in (
        ("GET", f"/api/orders/{before}"),
        ("POST", f"/api/orders/{before}/cancel"),
    ):
        assert api.http.request(method, path, headers=mine).status_code == 404
    listing = api.http.get("/api/orders", params={"limit": 100}, headers=mine).json()
    assert str(before) not in [o["orderId"] for o in listing["items"]]
    assert str(after) in [o["orderId"] for o in listing["items"]]
    resp = api.http.post(f"/api/orders/{after}/cancel", headers=mine)
    assert resp.status_code == 202, resp.text
    rows = pg.execute(
        "SELECT id, status FROM orders WHERE id IN (%s, %s)", (before, after)
    ).fetchall()
    assert {r["id"]: r["status"] for r in rows} == {before: "RESERVED", after: "CANCELLED"}


def test_listing_pages_own_orders_and_admin_filters(api: Api, customer: str) -> None:
    ids = [api.place_ok(customer, [("SKU-8", 1)]) for _ in range(3)]
    h = api.headers(customer)
    first = api.http.get("/api/orders", params={"limit": 2}, headers=h).json()
    assert len(first["items"]) == 2 and first["nextCursor"]
    second = api.http.get(
        "/api/orders", params={"limit": 2, "cursor": first["nextCursor"]}, headers=h
    ).json()
    seen = [o["orderId"] for o in first["items"] + second["items"]]
    assert sorted(seen) == sorted(ids) and second["nextCursor"] is None
    mine = api.http.get(
        "/api/orders", params={"customerId": customer, "limit": 100}, headers=api.admin
    ).json()
    assert sorted(o["orderId"] for o in mine["items"]) == sorted(ids)
    bad = api.http.get("/api/orders", params={"cursor": "%%%"}, headers=h)
    assert bad.status_code == 422
    bad = api.http.get("/api/orders", params={"status": "NOPE"}, headers=h)
    assert bad.status_code == 422
    # a misspelt filter is refused, not dropped: `customer_id` listed every customer's orders
    typo = api.http.get("/api/orders", params={"customer_id": customer}, headers=api.admin)
    assert typo.status_code == 422 and typo.json()["error"]["code"] == "validation_error", typo.text


def test_a_customer_id_belongs_to_the_first_principal_that_used_it(
    api: Api, customer: str, pg: Any
) -> None:
    api.place_ok(customer, [("SKU-6", 1)])  # `customer` (principal) now owns `customer` (id)
    owner = pg.execute(
        "SELECT principal FROM customer_owners WHERE customer_id = %s", (customer,)
    ).fetchone()
    assert owner == {"principal": customer}
    body = {"customerId": customer, "items": [{"sku": "SKU-6", "qty": 1}]}
    intruder = f"other-{uuid.uuid4().hex[:8]}"
    resp = api.http.post("/api/orders", json=body, headers=api.headers(intruder))
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
    n = pg.execute("SELECT count(*) AS n FROM orders WHERE principal = %s", (intruder,))
    assert n.fetchone()["n"] == 0
    assert api.http.post("/api/orders", json=body, headers=api.admin).status_code == 202


def test_inventory_reads_for_anyone_writes_for_admins(api: Api, customer: str) -> None:
    h = api.headers(customer)
    stock = api.http.get("/api/inventory/SKU-10", headers=h).json()
    assert stock["available"] == stock["onHand"] - stock["reserved"]
    assert api.http.put("/api/inventory/SKU-10", json={"onHand": 1}, headers=h).status_code == 403
    assert api.http.get("/api/inventory/NOPE-1", headers=h).status_code == 404
    neg = api.http.put("/api/inventory/SKU-10", json={"onHand": -1}, headers=api.admin)
    assert neg.status_code == 422


def test_restock_cannot_go_below_reserved(api: Api, customer: str) -> None:
    sku = "SKU-99"
    api.set_available(sku, 3)
    api.fault("shipping-hold", True, customer)
    try:
        oid = api.place_ok(customer, [(sku, 2)])
        api.wait_status(customer, oid, "PAID")
        reserved = api.stock(sku)["reserved"]
        resp = api.http.put(
            f"/api/inventory/{sku}", json={"onHand": reserved - 1}, headers=api.admin
        )
        assert resp.status_code == 409, resp.text
        assert api.stock(sku)["reserved"] == reserved
    finally:
        api.fault("shipping-hold", False, customer)
    api.wait_status(customer, oid, "DELIVERED")


def test_idempotency_key_replays_conflicts_and_rejects_changed_bodies(
    api: Api,
    customer: str,
    pg: Any,
) -> None:
    h = {**api.headers(customer), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"customerId": customer, "items": [{"sku": "SKU-11", "qty": 1}]}
    first = api.http.post("/api/orders", json=body, headers=h)
    again = api.http.post("/api/orders", json=body, headers=h)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    changed = api.http.post(
        "/api/orders", json={**body, "items": [{"sku": "SKU-11", "qty": 2}]}, headers=h
    )
    assert changed.status_code == 422
    n = pg.execute("SELECT count(*) AS n FROM orders WHERE principal = %s", (customer,)).fetchone()
    assert n["n"] == 1
    # keys are scoped per principal: an admin (who may order for this customer) with the same
    # key and body places a new order
    other = {**api.admin, "Idempotency-Key": h["Idempotency-Key"]}
    scoped = api.http.post("/api/orders", json=body, headers=other)
    assert scoped.status_code == 202 and scoped.json()["orderId"] != first.json()["orderId"]


def test_a_reused_key_once_redis_forgot_it_claims_no_customer_id(
    api: Api, customer: str, pg: Any, rds: Any
) -> None:
    """Redis keeps a key `IDEMPOTENCY_TTL_S` (or is skipped while it does not answer); Postgres
    keeps it for good. A key reused after that with another customer id is answered 422 from
    Postgres, and changes nothing: the customer id it named stays free (the statement claimed
    it before finding the key used)."""
    key = f"k-{uuid.uuid4()}"
    h = {**api.headers(customer), "Idempotency-Key": key}
    body = {"customerId": customer, "items": [{"sku": "SKU-11", "qty": 1}]}
    assert api.http.post("/api/orders", json=body, headers=h).status_code == 202
    forgot = rds.delete(f"idem:{customer}:{hashlib.sha256(key.encode()).hexdigest()}")
    assert forgot == 1  # what its TTL does after 24 h
    fresh = f"{customer}-other"
    reused = api.http.post("/api/orders", json={**body, "customerId": fresh}, headers=h)
    assert reused.status_code == 422, reused.text
    assert "Idempotency-Key" in reused.json()["error"]["message"]
    owner = pg.execute(
        "SELECT principal FROM customer_owners WHERE customer_id = %s", (fresh,)
    ).fetchone()
    assert owner is None, "a rejected request claimed the customer id"
    # the id is still free for its first real order (by another principal here)
    other = f"other-{uuid.uuid4().hex[:8]}"
    taken = api.http.post(
        "/api/orders", json={**body, "customerId": fresh}, headers=api.headers(other)
    )
    assert taken.status_code == 202, taken.text


def test_concurrent_duplicates_create_one_order(api: Api, customer: str, pg: Any) -> None:
    h = {**api.headers(customer), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"customerId": customer, "items": [{"sku": "SKU-12", "qty": 1}]}
    results: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(base_url=str(api.http.base_url), timeout=15) as c:
            results.append(c.post("/api/orders", json=body, headers=h))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert set(codes) <= {202, 409} and 202 in codes, codes
    ids = {r.json()["orderId"] for r in results if r.status_code == 202}
    assert len(ids) == 1
    n = pg.execute("SELECT count(*) AS n FROM orders WHERE principal = %s", (customer,)).fetchone()
    assert n["n"] == 1


def test_rate_limit_answers_429_with_retry_after(
    api: Api,
    customer: str,
    rds: Any,
    settings: Any,
    pg: Any,
) -> None:
    window = int(time.time() // 60)
    rds.set(f"ratelimit:{customer}:{window}", settings.rate_limit_per_min, ex=120)
    rds.set(f"ratelimit:{customer}:{window + 1}", settings.rate_limit_per_min, ex=180)
    resp = api.place(customer, [("SKU-13", 1)])
    assert resp.status_code == 429, resp.text
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert resp.json()["error"]["code"] == "rate_limited"
    n = pg.execute("SELECT count(*) AS n FROM orders WHERE principal = %s", (customer,)).fetchone()
    assert n["n"] == 0


def test_sse_streams_each_status_change_and_ends_at_the_final_one(
    api: Api,
    customer: str,
) -> None:
    api.fault("shipping-hold", True, customer)
    received: list[dict[str, Any]] = []
    try:
        order_id = api.place_ok(customer, [("SKU-14", 1)])
        api.wait_status(customer, order_id, "PAID")

        def listen() -> None:
            with (
                httpx.Client(base_url=str(api.http.base_url), timeout=30) as c,
                c.stream(
                    "GET", f"/api/orders/{order_id}/events", headers=api.headers(customer)
                ) as resp,
            ):
                assert resp.headers["content-type"].startswith("text/event-stream")
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        received.append(json.loads(line[5:]))

        listener = threading.Thread(target=listen)
        listener.start()
        wait_until(lambda: any(e["status"] == "PAID" for e in received), what="SSE up to PAID")
    finally:
        api.fault("shipping-hold", False, customer)
    listener.join(timeout=30)
    assert not listener.is_alive(), "stream must close at the terminal status"
    assert [e["status"] for e in received] == [
        "PENDING",
        "RESERVED",
        "PAID",
        "SHIPPED",
        "DELIVERED",
    ]
