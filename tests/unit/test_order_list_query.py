"""`GET /api/orders`'s query (serve_app/routes_orders.py): an empty value counts as the
parameter left out, for all four alike. Before, an empty `cursor` was the first page while an
empty `status`, `customerId` or `limit` was a 422, so the README's own template
`?status=&customerId=&limit=&cursor=` was refused."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from core.auth import make_token
from core.settings import Settings
from serve_app.api import create_app
from serve_app.models import OrderPage
from tests.unit import asgi

SECRET = "order-list-test-secret-of-32-bytes!!"


class _Orders:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    async def list(self, who: Any, **query: Any) -> OrderPage:
        self.asked.append(query)
        return OrderPage(items=[], next_cursor=None)


def _list(query: str) -> tuple[httpx.Response, _Orders]:
    app = create_app(with_ray=False)
    orders = _Orders()
    app.state.services = SimpleNamespace(settings=Settings(jwt_secret=SECRET), orders=orders)
    token = make_token("customer1", ["customer"], secret=SECRET)

    auth = {"Authorization": f"Bearer {token}"}
    return asgi.request(app, "GET", f"/api/orders?{query}", headers=auth), orders


_LEFT_OUT = {"status": None, "customer_id": None, "limit": 20, "cursor": None}


@pytest.mark.parametrize(
    "query",
    ["status=&customerId=&limit=&cursor=", "status=", "customerId=", "limit=", "cursor=", ""],
)
def test_an_empty_list_parameter_counts_as_left_out(query: str) -> None:
    resp, orders = _list(query)
    assert resp.status_code == 200, resp.text
    assert orders.asked == [_LEFT_OUT]


def test_given_list_parameters_are_passed_on() -> None:
    resp, orders = _list("status=PAID&customerId=c-1&limit=5&cursor=abc")
    assert resp.status_code == 200, resp.text
    assert orders.asked == [{"status": "PAID", "customer_id": "c-1", "limit": 5, "cursor": "abc"}]


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("status=LOST", "status"),
        ("customerId=%20", "customerId"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        (f"cursor={'c' * 201}", "cursor"),
    ],
)
def test_a_list_parameter_given_badly_is_still_422(query: str, where: str) -> None:
    resp, orders = _list(query)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["loc"] == ["query", where]
    assert orders.asked == []
