"""A client that leaves mid-upload (serve_app/errors.py): reading its body raises Starlette's
ClientDisconnect, which reached the catch-all as an "unhandled error" (ERROR with a traceback,
a 500) and was then raised again by ServerErrorMiddleware (a second traceback). Now it is a
4xx nobody reads, logged at debug."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import Message

from core.auth import make_token
from core.settings import Settings
from serve_app.api import create_app

SECRET = "disconnect-test-secret-of-32-bytes!!"
ORDER_ID = "0197a3c2-5b1e-7c3d-9f2a-1b2c3d4e5f60"


def _upload_then_leave(path: str) -> list[Message]:
    """Call the app as the server would for a POST whose client sends part of its body and then
    disconnects; returns what the app sent (it must not raise)."""
    app = create_app(with_ray=False)
    app.state.services = SimpleNamespace(
        settings=Settings(jwt_secret=SECRET), accept=None, orders=None
    )
    token = make_token("customer1", ["customer"], secret=SECRET)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "http_version": "1.1",
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"60"),
        ],
        "server": ("t", 80),
        "client": ("c", 1),
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"customerId": "c-1", "it', "more_body": True}
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize("path", ["/api/orders", f"/api/orders/{ORDER_ID}/cancel"])
def test_a_client_gone_mid_upload_is_a_quiet_4xx_not_a_logged_500(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        sent = _upload_then_leave(path)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert 400 <= start["status"] < 500
    here = [r for r in caplog.records if r.thread == threading.get_ident()]  # not Ray's threads
    assert not [r for r in here if r.levelno >= logging.ERROR or r.exc_info]
    ours = [r for r in caplog.records if r.name.startswith("serve_app")]
    assert {r.levelno for r in ours} == {logging.DEBUG}
    assert any("disconnected" in r.getMessage() for r in ours)
