"""The accept path: one transaction stores the order and its outbox row; the relay publishes."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from adapters.redis_clients import REDIS_TIMEOUT_S
from domain.events import Topic
from tests.integration.conftest import Api, paused_redis


def test_accepted_order_is_stored_and_its_event_reaches_kafka(
    api: Api,
    customer: str,
    pg: Any,
    kafka_tap: Any,
) -> None:
    tap = kafka_tap(Topic.ORDER_CREATED)
    resp = api.place(customer, [("SKU-1", 2), ("SKU-7", 1)])
    assert resp.status_code == 202
    order_id = resp.json()["orderId"]
    row = pg.execute("SELECT * FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row["customer_id"] == customer and row["principal"] == customer
    prices = {
        r["sku"]: r["unit_price"]
        for r in pg.execute("SELECT sku, unit_price FROM catalog WHERE sku IN ('SKU-1', 'SKU-7')")
    }
    assert row["total"] == 2 * prices["SKU-1"] + prices["SKU-7"]  # priced by the server
    tap.wait_for(
        lambda seen: any(str(e.order_id) == order_id for _, e, _ in seen if e),
        what="order.created on Kafka",
    )
    ((topic, event),) = api_events(tap, order_id)
    assert topic == Topic.ORDER_CREATED and event.type == "OrderCreated"
    record = next(r for _, e, r in tap.seen if e and str(e.order_id) == order_id)
    assert record.key == order_id.encode()  # keyed by order id: per-order ordering
    assert event.data["items"][0]["sku"] == "SKU-1" and event.data["customerId"] == customer


def api_events(tap: Any, order_id: str) -> list[tuple[str, Any]]:
    return list(tap.events(order_id))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customerId": "c-1", "items": []}, 422, "validation_error"),
        ({"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 0}]}, 422, "validation_error"),
        ({"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 5000}]}, 422, "validation_error"),
        ({"customerId": "c-1", "items": [{"sku": "../etc", "qty": 1}]}, 422, "validation_error"),
        (
            {"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 1}], "status": "PAID"},
            422,
            "validation_error",
        ),
        (
            {"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 1}], "total": 0.01},
            422,
            "validation_error",
        ),
        ({"customerId": "c-1", "items": [{"sku": "NOPE-1", "qty": 1}]}, 422, "invalid_input"),
        (
            {
                "customerId": "c-1",
                "items": [{"sku": "SKU-1", "qty": 600}, {"sku": "SKU-1", "qty": 600}],
            },
            422,
            "invalid_input",
        ),
    ],
)
def test_bad_bodies_get_a_clear_4xx_and_store_nothing(
    api: Api,
    pg: Any,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    mine = "SELECT count(*) AS n FROM orders WHERE principal = 'customer1'"
    before = pg.execute(mine).fetchone()["n"]
    resp = api.http.post("/api/orders", json=body, headers=api.headers("customer1"))
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert pg.execute(mine).fetchone()["n"] == before


def test_invalid_json_and_oversized_bodies(api: Api) -> None:
    headers = {**api.headers("customer1"), "Content-Type": "application/json"}
    resp = api.http.post("/api/orders", content=b'{"customerId": ', headers=headers)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    huge = b'{"customerId":"c-1","items":[' + b" " * 200_000 + b"]}"
    resp = api.http.post("/api/orders", content=huge, headers=headers)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


def test_junk_path_parameters_are_4xx_json(api: Api) -> None:
    h = api.headers("customer1")
    oid = uuid.uuid4()
    for path, status in (
        ("/api/orders/not-a-uuid", 404),
        ("/api/orders/1%27%20OR%201=1", 404),
        (f"/api/orders/{str(oid).upper()}", 404),  # ids are canonical lower-case UUIDs
        (f"/api/orders/{oid.hex}", 404),
        ("/api/inventory/bad%20sku", 422),
    ):
        resp = api.http.get(path, headers=h)
        assert resp.status_code == status, (path, resp.text)
        assert "error" in resp.json()
    resp = api.http.get(f"/api/orders/{oid}", headers=h)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_unknown_route_is_json_404(http: httpx.Client) -> None:
    resp = http.get("/api/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_orders_are_accepted_while_redis_does_not_answer(api: Api, customer: str, pg: Any) -> None:
    """A Redis that stops answering without closing its connections (here: paused) once held
    every `POST /api/orders` for 15 s; the gateway's Redis commands now time out, admission and
    the idempotency fast path fail open, and the next orders skip Redis for a while. Postgres
    still keeps each order's key."""
    keys = [f"paused-{uuid.uuid4().hex}" for _ in range(2)]
    body = {"customerId": customer, "items": [{"sku": "SKU-2", "qty": 1}]}
    answers, took = [], []
    with paused_redis(api):
        for key in keys:
            headers = {**api.headers(customer), "Idempotency-Key": key}
            started = time.monotonic()
            answers.append(api.http.post("/api/orders", headers=headers, json=body, timeout=12))
            took.append(time.monotonic() - started)
    assert [r.status_code for r in answers] == [202, 202], [r.text for r in answers]
    # the first waited for Redis's timeout (Redis was paused); the second did not wait for Redis
    # at all: under one timeout (a command sent to the paused Redis waits a whole one)
    assert took[0] >= REDIS_TIMEOUT_S, took
    assert took[1] < REDIS_TIMEOUT_S, took
    for key, resp in zip(keys, answers, strict=True):
        order_id = resp.json()["orderId"]
        row = pg.execute("SELECT idempotency_key FROM orders WHERE id = %s", (order_id,))
        assert row.fetchone() == {"idempotency_key": key}
        api.wait_status(customer, order_id, "DELIVERED", timeout=60)
