"""Live status streams (SSE): resuming with Last-Event-ID, orders whose timeline retention
dropped, and the bound on open streams that keeps the replica's request slots for orders."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Api, scratch_order, wait_until


def _events(resp: httpx.Response) -> Iterator[dict[str, str]]:
    """The SSE events of a response as `{field: value}` (comments and pings skipped)."""
    event: dict[str, str] = {}
    for line in resp.iter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


def _read_all(
    api: Api, who: str, order_id: Any, **headers: str
) -> tuple[int, list[dict[str, str]]]:
    with (
        httpx.Client(base_url=str(api.http.base_url), timeout=30) as c,
        c.stream(
            "GET", f"/api/orders/{order_id}/events", headers={**api.headers(who), **headers}
        ) as resp,
    ):
        return resp.status_code, list(_events(resp)) if resp.status_code == 200 else []


def test_a_reconnect_with_last_event_id_resumes_and_ends_with_204(api: Api, customer: str) -> None:
    """A client's EventSource reconnects with the last `id` it saw: it gets only what
    followed; once it has seen the final status, 204 tells it to stop reconnecting."""
    order_id = api.place_ok(customer, [("SKU-15", 1)])
    api.wait_status(customer, order_id, "DELIVERED")
    code, everything = _read_all(api, customer, order_id)
    assert code == 200
    statuses = [orjson.loads(e["data"])["status"] for e in everything]
    assert statuses == ["PENDING", "RESERVED", "PAID", "SHIPPED", "DELIVERED"]
    paid = everything[2]["id"]
    code, rest = _read_all(api, customer, order_id, **{"Last-Event-ID": paid})
    assert code == 200
    assert [orjson.loads(e["data"])["status"] for e in rest] == ["SHIPPED", "DELIVERED"]
    assert [e["id"] for e in rest] == [e["id"] for e in everything[3:]]
    code, after_final = _read_all(
        api, customer, order_id, **{"Last-Event-ID": everything[-1]["id"]}
    )
    assert (code, after_final) == (204, [])


def test_an_order_whose_timeline_is_gone_still_reports_its_status(
    api: Api, customer: str, pg: Any
) -> None:
    """Retention drops timeline rows after ORDER_HISTORY_DAYS and keeps the order: its stream
    sends the order's status once and closes (it sent nothing for 600 s). The event's id tells
    a reconnect that status was seen: 204, not the same event again (an EventSource
    reconnects after every close; with no id it got the final status every ~3 s for ever)."""
    order_id = scratch_order(pg, customer, "DELIVERED")  # an order row, no timeline
    code, events = _read_all(api, customer, order_id)
    assert code == 200
    assert len(events) == 1 and events[0]["id"] == "current"
    data = orjson.loads(events[0]["data"])
    assert (data["orderId"], data["status"], data["event"]) == (str(order_id), "DELIVERED", None)
    again = _read_all(api, customer, order_id, **{"Last-Event-ID": events[0]["id"]})
    assert again == (204, [])


def _first_event(api: Api, who: str, order_id: Any) -> dict[str, str]:
    """The stream's first event (an order's is sent at once), the stream then closed."""
    with (
        httpx.Client(base_url=str(api.http.base_url), timeout=30) as c,
        c.stream("GET", f"/api/orders/{order_id}/events", headers=api.headers(who)) as resp,
    ):
        assert resp.status_code == 200, resp.status_code
        return next(_events(resp))


def test_a_resume_after_the_current_status_gets_what_came_since(
    api: Api, customer: str, pg: Any
) -> None:
    """An order without timeline rows reports its status as `current`; a reconnect naming it
    took the order's status at the reconnect as seen, so a status that came meanwhile (a
    cancel) was skipped, the stream idled 600 s, and the client reconnected for ever."""
    order_id = scratch_order(pg, customer, "RESERVED")  # an order row, no timeline
    first = _first_event(api, customer, order_id)
    assert first["id"] == "current"
    assert orjson.loads(first["data"])["status"] == "RESERVED"
    cancel = api.http.post(f"/api/orders/{order_id}/cancel", headers=api.headers(customer))
    assert cancel.status_code == 202, cancel.text
    code, since = _read_all(api, customer, order_id, **{"Last-Event-ID": "current"})
    assert code == 200
    assert [orjson.loads(e["data"])["status"] for e in since] == ["CANCELLED"]
    assert _read_all(api, customer, order_id, **{"Last-Event-ID": since[-1]["id"]}) == (204, [])


def _a_fresh_stream_opens(api: Api, pg: Any, who: str) -> bool:
    """Whether a new principal's stream (of an order nothing moves) opens, then closes it."""
    order_id = scratch_order(pg, who, "RESERVED")
    with (
        httpx.Client(base_url=str(api.http.base_url), timeout=30) as c,
        c.stream("GET", f"/api/orders/{order_id}/events", headers=api.headers(who)) as resp,
    ):
        return resp.status_code == 200


def test_open_streams_are_bounded_per_principal_and_per_replica(
    api: Api, customer: str, pg: Any, settings: Any
) -> None:
    """Each open stream holds one of the replica's request slots: a principal gets 429 past
    its share, every principal 503 past the replica's, and orders are still taken meanwhile."""
    if settings.gateway_replicas != 1:
        pytest.skip("the bound is per replica: this test counts on one")
    per_principal = settings.sse_max_streams_per_principal
    total = settings.sse_max_streams or settings.max_ongoing_requests // 4
    principals = [f"{customer}-{n}" for n in range(-(-total // per_principal))]
    try:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(httpx.Client(base_url=str(api.http.base_url), timeout=30))

            def open_stream(who: str) -> httpx.Response:
                order_id = scratch_order(pg, who, "RESERVED")  # nothing moves it: stays open
                return stack.enter_context(
                    client.stream("GET", f"/api/orders/{order_id}/events", headers=api.headers(who))
                )

            first = [open_stream(principals[0]) for _ in range(per_principal)]
            assert [r.status_code for r in first] == [200] * per_principal
            over = open_stream(principals[0])
            assert over.status_code == 429
            over.read()
            assert over.json()["error"]["code"] == "rate_limited" and "Retry-After" in over.headers
            first[0].close()  # a stream the client closed gives its slot back
            wait_until(
                lambda: open_stream(principals[0]).status_code == 200, what="the slot given back"
            )
            opened = per_principal
            for who in principals[1:]:
                for _ in range(min(per_principal, total - opened)):
                    assert open_stream(who).status_code == 200
                    opened += 1
            full = open_stream(f"{customer}-{uuid.uuid4().hex[:6]}")
            assert full.status_code == 503
            full.read()
            assert full.json()["error"]["code"] == "unavailable"
            api.place_ok(customer, [("SKU-16", 1)])  # the slots orders need are still free
    finally:  # the tests after this one must not find the replica's slots taken
        wait_until(
            lambda: _a_fresh_stream_opens(api, pg, f"{customer}-{uuid.uuid4().hex[:6]}"),
            timeout=30,
            what="the replica to free the closed streams' slots",
            interval=0.2,
        )


def test_a_last_event_id_that_is_no_id_starts_from_the_first_event(
    api: Api, customer: str, pg: Any
) -> None:
    """Header bytes are read as latin-1: 0xB2 is "²", which `str.isdigit` takes for a digit
    and `int` refuses (a 500 with a traceback in the log). Any such id starts from the top."""
    order_id = scratch_order(pg, customer, "DELIVERED")
    for given in (b"\xb2", b"12\xb3", b"-1", b"9" * 40):
        with (
            httpx.Client(base_url=str(api.http.base_url), timeout=30) as c,
            c.stream(
                "GET",
                f"/api/orders/{order_id}/events",
                headers=[
                    *((k.encode(), v.encode()) for k, v in api.headers(customer).items()),
                    (b"Last-Event-ID", given),
                ],
            ) as resp,
        ):
            assert resp.status_code == 200, (given, resp.read())
            events = list(_events(resp))
        assert [orjson.loads(e["data"])["status"] for e in events] == ["DELIVERED"], given


def test_a_last_event_id_of_another_order_starts_from_the_first_event(
    api: Api, customer: str
) -> None:
    """A number is read as a position only when it is one of this order's timeline rows: the
    id of another order's event (or a number past every row) said "seen the final status", a
    204 that stops an EventSource for good, or silenced a live order's stream."""
    first = api.place_ok(customer, [("SKU-16", 1)])
    second = api.place_ok(customer, [("SKU-16", 1)])
    for oid in (first, second):
        api.wait_status(customer, oid, "DELIVERED")
    _, other = _read_all(api, customer, first)
    later = max(int(e["id"]) for e in other)
    for given in (str(later), "999999999999999999"):
        code, events = _read_all(api, customer, second, **{"Last-Event-ID": given})
        assert code == 200, given
        statuses = [orjson.loads(e["data"])["status"] for e in events]
        assert statuses == ["PENDING", "RESERVED", "PAID", "SHIPPED", "DELIVERED"], given
