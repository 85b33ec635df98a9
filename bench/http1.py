"""A small HTTP/1.1 client for the load generator: keep-alive connections, nothing else.

The generator shares the 2 cores with the stack it measures, so every CPU millisecond it spends
is taken from the system under test. aiohttp cost ~0.5 ms of CPU per request here (0.15 cores
at 300 requests/s); this client builds each request as one bytes object and parses only what
the benchmark reads (status, body by Content-Length or chunks), on asyncio's Protocol API.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import orjson

Response = tuple[int, bytes]


class HttpError(ConnectionError):
    """The connection failed, closed early or sent something that is not HTTP/1.1."""


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            parsed = _parse(self.buf)
        except (ValueError, IndexError) as exc:
            self.waiter.set_exception(HttpError(f"bad response: {exc}"))
            return
        if parsed is not None:
            status, body, keep, used = parsed
            del self.buf[:used]
            self.waiter.set_result((status, body, keep))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse(buf: bytearray) -> tuple[int, bytes, bool, int] | None:
    """`(status, body, keep_alive, bytes used)` of the first full response in `buf`, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1."):
        raise ValueError(f"not an HTTP/1.x status line: {head[:40]!r}")
    status = int(head[9:12])
    keep = b"\r\nconnection: close" not in head
    start = end + 4
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        size = int(head[at + 17 : stop if stop >= 0 else len(head)])
        if len(buf) < start + size:
            return None
        return status, bytes(buf[start : start + size]), keep, start + size
    if b"\r\ntransfer-encoding: chunked" in head:
        body = bytearray()
        pos = start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < line_end + 4:
                    return None
                return status, bytes(body), keep, line_end + 4
            if len(buf) < line_end + 2 + size + 2:
                return None
            body += buf[line_end + 2 : line_end + 2 + size]
            pos = line_end + 2 + size + 2
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", keep, start
    raise ValueError("response without Content-Length or chunked body")


class Http1Client:
    """Requests to one origin over a pool of keep-alive connections (opened as needed)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"only http:// URLs are supported: {base_url}")
        self._host, self._port = url.hostname, url.port or 80
        self._authority = f"{self._host}:{self._port}".encode()
        self._timeout = timeout_s
        self._idle: list[_Conn] = []

    async def _connection(self, deadline: float) -> _Conn:
        """An idle connection, else a new one, opened by `deadline` (the loop's time)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(deadline):
            _, conn = await loop.create_connection(_Conn, self._host, self._port)
        return conn

    async def request(
        self, method: bytes, path: bytes, headers: bytes = b"", body: bytes = b""
    ) -> Response:
        """`(status, body)`; raises `HttpError` or `TimeoutError` (the connection is dropped).
        The timeout covers the whole request: opening a connection, then the answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        conn = await self._connection(deadline)
        assert conn.transport is not None
        waiter: asyncio.Future[tuple[int, bytes, bool]] = loop.create_future()
        conn.waiter = waiter
        timer = loop.call_at(deadline, _expire, waiter)
        conn.transport.write(
            b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s"
            % (method, path, self._authority, headers, len(body), body)
        )
        try:
            status, payload, keep = await waiter
        except BaseException:
            conn.close()
            raise
        finally:
            timer.cancel()
            conn.waiter = None
        if keep and not conn.closed:
            self._idle.append(conn)
        else:
            conn.close()
        return status, payload

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _expire(waiter: asyncio.Future[tuple[int, bytes, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no response in time"))


_NUMBER = re.compile(rb"\d+(\.\d+)?")


def refusal(body: bytes, limit: int = 100) -> str:
    """Why an answer other than 202 refused an order, short enough to count by: the platform's
    JSON error as `code: message`, else the body's first line of text, numbers as `N` (Serve's
    "Request dropped due to backpressure (num_queued_requests=N, …)" is one reason, not one per
    queue length)."""
    try:
        error = orjson.loads(body)["error"]
        text = f"{error['code']}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        first = _NUMBER.sub(b"N", body.strip()).split(b"\n", 1)[0]
        text = first.decode(errors="replace").strip() or "(empty body)"
    return text if len(text) <= limit else text[: limit - 1] + "…"
