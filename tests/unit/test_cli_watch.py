"""The CLI's SSE parser and `orders watch`: events from lines, status changes from events, and
the follow loop against a scripted gateway (reconnects, replays, errors, the time limit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from cli import api
from cli.order import Change, Follower, follow
from cli.sse import Event, Parser

ORDER = "01a23ac9-5905-70ad-a695-176e05057728"


def _feed(parser: Parser, text: str) -> list[Event]:
    return [e for line in text.split("\n") if (e := parser.feed(line)) is not None]


def test_parser_reads_events_ids_and_multiline_data_and_skips_comments() -> None:
    text = (
        ": ping - 2026-12-03 07:00:00\n\n"
        'event: status\nid: 7\ndata: {"a": 1}\n\n'
        "data:first\ndata: second\r\n\n"
        "retry: 1000\nunknown: x\n\n"
    )
    assert _feed(Parser(), text) == [
        Event("status", '{"a": 1}', "7"),
        Event("message", "first\nsecond", "7"),  # the last id stays until a new one
    ]


def test_parser_waits_for_the_blank_line() -> None:
    parser = Parser()
    assert parser.feed("event: status") is None
    assert parser.feed("data: {}") is None
    assert parser.feed("") == Event("status", "{}", None)
    assert parser.feed("") is None  # nothing pending


def _status(eid: int, status: str, event: str = "E") -> Event:
    body = {"orderId": ORDER, "status": status, "event": event, "at": "2026-12-03T07:23:23+00:00"}
    return Event("status", json.dumps(body), str(eid))


def test_follower_reports_each_change_once_and_knows_the_end() -> None:
    f = Follower()
    assert f.take(_status(1, "PENDING", "OrderCreated")) == Change(
        "PENDING", "OrderCreated", "2026-12-03T07:23:23+00:00"
    )
    assert f.take(_status(2, "RESERVED")) is not None
    assert f.take(_status(1, "PENDING")) is None  # a replay after a reconnect
    assert f.take(_status(2, "RESERVED")) is None
    assert f.take(_status(3, "RESERVED")) is None  # an entry that did not change the status
    assert f.take(Event("message", "{}", "4")) is None
    assert not f.done
    assert f.take(_status(5, "REFUNDED")) is not None
    assert f.done


def _sse(events: list[tuple[int, str]]) -> bytes:
    out = ": ping\n\n"
    for eid, status in events:
        data = json.dumps({"orderId": ORDER, "status": status, "event": f"to-{status}", "at": ""})
        out += f"event: status\nid: {eid}\ndata: {data}\n\n"
    return out.encode()


def _run(handler: httpx.MockTransport, timeout_s: float = 5.0) -> tuple[list[str], Follower]:
    seen: list[str] = []
    follower = Follower()
    asyncio.run(
        follow(
            "http://gw",
            "tok",
            ORDER,
            follower,
            lambda c: seen.append(c.status),
            timeout_s,
            transport=handler,
            retry_s=0.01,
        )
    )
    return seen, follower


def test_follow_reconnects_after_a_drop_and_skips_what_it_saw() -> None:
    streams = [
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "restarting"}}),
        httpx.Response(200, content=_sse([(1, "PENDING"), (2, "RESERVED")])),  # then drops
        httpx.Response(
            200,
            content=_sse([(1, "PENDING"), (2, "RESERVED"), (3, "PAID"), (5, "SHIPPED")])
            + _sse([(6, "DELIVERED"), (7, "DELIVERED")]),
        ),
    ]
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return streams.pop(0)

    seen, follower = _run(httpx.MockTransport(handler))
    assert seen == ["PENDING", "RESERVED", "PAID", "SHIPPED", "DELIVERED"]
    assert follower.done and not streams
    assert {r.url.path for r in asked} == {f"/api/orders/{ORDER}/events"}
    assert all(r.headers["authorization"] == "Bearer tok" for r in asked)


def test_follow_stops_at_a_client_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "order gone"}})

    with pytest.raises(api.ApiError) as err:
        _run(httpx.MockTransport(handler))
    assert (err.value.status, err.value.code, err.value.message) == (404, "not_found", "order gone")


async def _forever() -> AsyncIterator[bytes]:
    yield _sse([(1, "PENDING")])
    while True:
        await asyncio.sleep(0.05)
        yield b": ping\n\n"


def test_follow_gives_up_at_the_time_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_forever())

    seen: list[str] = []
    follower = Follower()
    with pytest.raises(TimeoutError):
        asyncio.run(
            follow(
                "http://gw",
                "tok",
                ORDER,
                follower,
                lambda c: seen.append(c.status),
                2.0,  # the stream never ends; a stalled box still reads its first event
                transport=httpx.MockTransport(handler),
            )
        )
    assert seen == ["PENDING"] and follower.status == "PENDING"


def test_error_of_reads_the_envelope_or_the_text() -> None:
    env = api.error_of(401, b'{"error": {"code": "unauthorized", "message": "invalid token"}}')
    assert (env.status, env.code, env.message, env.retryable) == (
        401,
        "unauthorized",
        "invalid token",
        False,
    )
    raw = api.error_of(502, b"Bad Gateway from the proxy")
    assert (raw.code, raw.message, raw.retryable) == (
        "http_error",
        "Bad Gateway from the proxy",
        True,
    )
    assert api.error_of(500, b"").message == "Internal Server Error"


def test_follow_gives_up_at_once_when_nothing_answers_at_first() -> None:
    """A wrong URL, a gateway not started: an error at once, not retries for --timeout."""
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(httpx.ConnectError):
        _run(httpx.MockTransport(handler), timeout_s=30)
    assert len(asked) == 1


def test_follow_reconnects_once_a_stream_was_open() -> None:
    """A gateway that answered once and then restarts is waited for."""
    answers: list[httpx.Response | None] = [
        httpx.Response(200, content=_sse([(1, "PENDING")])),  # then drops
        None,  # restarting: connection refused
        None,
        httpx.Response(200, content=_sse([(2, "PAID"), (3, "DELIVERED")])),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if answer is None:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return answer

    seen, follower = _run(httpx.MockTransport(handler))
    assert seen == ["PENDING", "PAID", "DELIVERED"] and follower.done and not answers


def test_an_answer_that_is_no_json_object_is_an_api_error() -> None:
    for body in (b"<html>proxy page</html>", b"[1, 2]", b""):
        with pytest.raises(api.ApiError) as err:
            api.json_object(httpx.Response(200, content=body))
        assert err.value.status == 200 and "no JSON object" in err.value.message
    assert api.json_object(httpx.Response(200, json={"orderId": "x"})) == {"orderId": "x"}
