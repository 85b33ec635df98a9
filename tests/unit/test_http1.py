"""The load generator's HTTP/1.1 client against a real loopback server (asyncio and uvloop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
import uvloop

from bench.http1 import Http1Client, HttpError, _parse, refusal
from bench.loadgen import Record
from bench.stats import errors_by_reason, errors_by_status

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def test_parse_content_length_chunked_and_partial() -> None:
    full = bytearray(b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nhello")
    assert _parse(full) == (202, b"hello", True, len(full))
    assert _parse(full[:-1]) is None  # body not complete yet
    chunked = bytearray(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nHTTP/1.1"
    )
    assert _parse(chunked) == (200, b"abcde", False, len(chunked) - len(b"HTTP/1.1"))
    with pytest.raises(ValueError):
        _parse(bytearray(b"SSH-2.0-OpenSSH\r\n\r\n"))


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _keepalive_and_bodies() -> tuple[list[tuple[int, bytes]], int]:
    connections = 0

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):
            size = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(size)
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s" % (size, body))
            await writer.drain()

    server, url = await _serve(echo)
    client = Http1Client(url, timeout_s=5)
    try:
        answers = [await client.request(b"POST", b"/x", b"", b"body-%d" % i) for i in range(3)]
        answers += await asyncio.gather(
            *(client.request(b"POST", b"/y", b"", b"p") for _ in range(4))
        )
    finally:
        client.close()
        server.close()
    return answers, connections


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_requests_reuse_keepalive_connections(run: Callable[..., object]) -> None:
    answers, connections = cast(tuple[list[tuple[int, bytes]], int], run(_keepalive_and_bodies()))
    assert answers[:3] == [(202, b"body-0"), (202, b"body-1"), (202, b"body-2")]
    assert answers[3:] == [(202, b"p")] * 4
    assert connections <= 4  # the three sequential requests shared one connection


async def _silent_then_closed() -> tuple[type[BaseException], type[BaseException]]:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        await asyncio.sleep(1)

    async def hangup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    errors: list[type[BaseException]] = []
    for handler, timeout_s in ((silent, 0.2), (hangup, 10.0)):  # a stalled box: no timeout
        server, url = await _serve(handler)
        client = Http1Client(url, timeout_s=timeout_s)
        try:
            await client.request(b"GET", b"/")
        except (TimeoutError, HttpError) as exc:
            errors.append(type(exc))
        finally:
            client.close()
            server.close()
    return errors[0], errors[1]


def test_timeout_and_hangup_raise() -> None:
    assert asyncio.run(_silent_then_closed()) == (TimeoutError, HttpError)


def test_a_refusal_is_counted_by_what_its_body_says() -> None:
    admission = b'{"error":{"code":"unavailable","message":"payments are temporarily unavailable"}}'
    assert refusal(admission) == "unavailable: payments are temporarily unavailable"
    serve = [
        b"Request dropped due to backpressure (num_queued_requests=%d, max_queued_requests=320)."
        % n
        for n in (64, 320)
    ]
    assert {refusal(b) for b in serve} == {
        "Request dropped due to backpressure (num_queued_requests=N, max_queued_requests=N)."
    }
    assert refusal(b"Internal Server Error") == "Internal Server Error"  # HAProxy's own page
    assert refusal(b"") == "(empty body)"
    assert refusal(b'{"detail": "not ours"}') == '{"detail": "not ours"}'
    assert len(refusal(b"x" * 500)) == 100


def test_errors_are_grouped_by_status_then_reason() -> None:
    records: list[Record] = [
        (0.0, 0.0, 0.1, 202, "0198a0c2-0000-7000-8000-000000000000"),
        (0.0, 0.0, 0.1, 503, "Request dropped due to backpressure"),
        (0.0, 0.0, 0.1, 503, "Request dropped due to backpressure"),
        (0.0, 0.0, 0.1, 503, "unavailable: circuit open"),
        (0.0, 0.0, 0.1, 0, "TimeoutError"),
    ]
    assert errors_by_reason(records) == {
        "0": {"TimeoutError": 1},
        "503": {"Request dropped due to backpressure": 2, "unavailable: circuit open": 1},
    }
    assert errors_by_status(errors_by_reason(records)) == {"0": 1, "503": 3}
