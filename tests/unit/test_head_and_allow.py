"""HEAD and 405 (serve_app/gate.py, serve_app/errors.py): a HEAD is the GET of its path with
the GET's checks and headers and no body, but on a live stream; a 405 names every method of
the path, not only the first route's (Starlette said `Allow: POST` for /api/orders)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from serve_app import errors
from serve_app.gate import SECURITY_HEADERS, Gate

STREAMED: list[str] = []


def _authorized(authorization: str | None = Header(default=None)) -> None:
    if authorization != "Bearer ok":
        raise HTTPException(401, "no token")


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.add_middleware(Gate, max_body_bytes=1024)

    @app.get("/things", dependencies=[Depends(_authorized)])
    async def things() -> dict[str, list[int]]:
        return {"things": [1, 2, 3]}

    @app.post("/things")
    async def add() -> dict[str, bool]:
        return {"added": True}

    @app.get("/things/{tid}/events")
    async def events(tid: str) -> StreamingResponse:
        async def forever() -> AsyncIterator[bytes]:
            STREAMED.append(tid)
            while True:
                yield b"data: x\n\n"
                await asyncio.sleep(1)

        return StreamingResponse(forever(), media_type="text/event-stream")

    return app


def test_a_head_is_the_gets_headers_without_its_body() -> None:
    client = TestClient(_app())
    get = client.get("/things", headers={"Authorization": "Bearer ok"})
    head = client.head("/things", headers={"Authorization": "Bearer ok"})
    assert (get.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == get.headers["content-type"]
    for name, value in SECURITY_HEADERS:
        assert head.headers[name.decode()] == value.decode()


def test_a_head_goes_through_the_gets_checks() -> None:
    head = TestClient(_app()).head("/things")
    assert head.status_code == 401
    assert head.content == b""


def test_a_head_on_a_live_stream_is_refused_without_starting_it() -> None:
    head = TestClient(_app()).head("/things/t1/events")
    assert head.status_code == 405
    assert head.headers["allow"] == "GET"
    assert STREAMED == []


def test_a_405_names_every_method_of_the_path() -> None:
    client = TestClient(_app())
    put = client.put("/things", json={})
    assert put.status_code == 405
    assert put.json()["error"]["code"] == "method_not_allowed"
    assert put.headers["allow"] == "GET, HEAD, POST"
    assert client.delete("/things/t1/events").headers["allow"] == "GET"


def test_the_gateways_405s_name_every_method_of_their_path() -> None:
    """The API itself: its routes sit in included routers, which FastAPI nests (create_app
    lists them for the 405). No lifespan runs: a 405 needs no service."""
    from serve_app.api import create_app

    client = TestClient(create_app(with_ray=False))
    order = "/api/orders/0190a0a0-0000-7000-8000-000000000000"
    assert client.put("/api/orders").headers["allow"] == "GET, HEAD, POST"
    assert client.delete(order).headers["allow"] == "GET, HEAD"
    assert client.put(f"{order}/events").headers["allow"] == "GET"
    assert client.get(f"{order}/cancel").headers["allow"] == "POST"
