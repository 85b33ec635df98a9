"""HEAD through the whole ingress (HAProxy, the Serve replica): the GET's status and headers
without its body, the GET's checks, never on a live stream (serve_app/gate.py)."""

from __future__ import annotations

import uuid

from tests.integration.conftest import Api


def test_head_answers_as_get_without_the_body(api: Api, customer: str) -> None:
    order_id = api.place_ok(customer, [("SKU-7", 1)])
    own = api.headers(customer)
    for path in (f"/api/orders/{order_id}", "/api/orders?limit=1", "/health"):
        get = api.http.get(path, headers=own)
        head = api.http.head(path, headers=own)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers["cache-control"] == "no-store", path
    stranger = api.headers(f"other-{uuid.uuid4().hex[:8]}")
    head = api.http.head(f"/api/orders/{order_id}", headers=stranger)
    assert (head.status_code, head.content) == (404, b"")  # another's order, as with GET
    assert api.http.head(f"/api/orders/{order_id}").status_code == 401  # no token


def test_head_on_a_live_stream_is_405_naming_get(api: Api, customer: str) -> None:
    order_id = api.place_ok(customer, [("SKU-7", 1)])
    head = api.http.head(f"/api/orders/{order_id}/events", headers=api.headers(customer))
    assert head.status_code == 405
    assert head.headers["allow"] == "GET"
    put = api.http.put("/api/orders", headers=api.headers(customer))
    assert (put.status_code, put.headers["allow"]) == (405, "GET, HEAD, POST")
