"""An unexpected error's 500 carries the headers every other answer gets from the Gate: its
handler runs in Starlette's ServerErrorMiddleware, outside every middleware."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from serve_app import errors
from serve_app.gate import SECURITY_HEADERS, Gate


def test_a_500_carries_the_security_headers() -> None:
    app = FastAPI()
    errors.install(app)
    app.add_middleware(Gate, max_body_bytes=1024)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    resp = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "internal"
    for name, value in SECURITY_HEADERS:
        assert resp.headers.get(name.decode()) == value.decode()
