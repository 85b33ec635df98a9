"""Requests at the edges of HTTP the routes do not look at themselves: a body sent to a route
that takes none, a path with a trailing slash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.integration.conftest import Api, scratch_order


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // 8192):
        yield b" " * 8192


def test_an_oversized_chunked_body_to_cancel_is_413_and_cancels_nothing(
    api: Api, customer: str, pg: Any, settings: Any
) -> None:
    """Chunked: no Content-Length to refuse it by. Cancel never read its body, so the Gate
    never counted it: the order was cancelled and the upload had no bound."""
    order_id = scratch_order(pg, customer, "RESERVED")  # nothing moves it on by itself
    resp = api.http.post(
        f"/api/orders/{order_id}/cancel",
        content=_chunks(settings.max_body_bytes + 3 * 8192),
        headers={**api.headers(customer), "Content-Type": "application/json"},
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "payload_too_large"
    row = pg.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row["status"] == "RESERVED"
    # a small body (a client that always sends `{}`) still cancels
    resp = api.http.post(f"/api/orders/{order_id}/cancel", json={}, headers=api.headers(customer))
    assert resp.status_code == 202, resp.text


def test_a_trailing_slash_is_a_json_404_not_a_redirect_to_the_host_sent(
    api: Api, customer: str
) -> None:
    resp = api.http.get("/api/orders/", headers={**api.headers(customer), "Host": "evil.example"})
    assert resp.status_code == 404, resp.headers
    assert "location" not in resp.headers
    assert resp.json()["error"]["code"] == "not_found"


def test_a_cancel_with_a_body_other_than_nothing_or_an_empty_object_cancels_nothing(
    api: Api, customer: str, pg: Any
) -> None:
    """The route read its body only to bound it: broken JSON, duplicate keys, unknown fields
    or another media type cancelled the order, where every other route refuses them."""
    order_id = scratch_order(pg, customer, "RESERVED")
    url, auth = f"/api/orders/{order_id}/cancel", api.headers(customer)
    json_type = {**auth, "Content-Type": "application/json"}
    for content, headers, status, code in (
        (b'{"a": 1, "a": 2', json_type, 400, "invalid_json"),
        (b'{"a": 1, "a": 2}', json_type, 400, "invalid_json"),
        (b'{"reason": "x"}', json_type, 422, "validation_error"),
        (b"[]", json_type, 422, "validation_error"),
        (b"{}", {**auth, "Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ):
        resp = api.http.post(url, content=content, headers=headers)
        assert resp.status_code == status, (content, resp.text)
        assert resp.json()["error"]["code"] == code
    row = pg.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row["status"] == "RESERVED"
    resp = api.http.post(url, headers=auth)  # no body at all
    assert resp.status_code == 202, resp.text


def test_without_a_token_every_order_route_is_401_whatever_the_id(api: Api) -> None:
    """The id was checked before the token: a malformed id answered 404 to a caller with no
    token, where the same request with a well-formed id answered 401."""
    for method, path in (
        ("GET", "/api/orders/XYZ"),
        ("POST", "/api/orders/ABC/cancel"),
        ("GET", "/api/orders/XYZ/events"),
        ("GET", "/api/orders/00000000-0000-0000-0000-000000000000"),
    ):
        resp = api.http.request(method, path)
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "unauthorized"
