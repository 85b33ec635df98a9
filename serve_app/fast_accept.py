"""`POST /api/orders` without FastAPI's per-request machinery (docs/performance.md, fifth round).

At 300 orders/s the gateway replica's one event-loop thread was the busiest process on the box
(~0.5 cores), and FastAPI and Starlette (routing through every route, dependency resolution,
header parameters, response encoding) were about a quarter of it. This pure-ASGI middleware
answers the happy path of the hot route itself: the same token check, the same pydantic
command, the same `AppState.place_order`, the same 202 body and headers.

It never decides an error that comes before anything is stored: a request without a bearer
token or JSON body, a bad token, a body that does not validate, an over-long Idempotency-Key
— each goes on, body replayed, to the FastAPI route, which answers exactly as it always has.
Errors after that point (rate limit, open circuit, idempotency conflicts, a backing service
down) are mapped by the same function the FastAPI handlers use (`errors.response_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.auth import AuthError, authenticate
from domain.commands import PlaceOrder
from serve_app import errors

PATH = "/api/orders"
_MAX_IDEMPOTENCY_KEY = 255  # the route's Header(max_length=255)


class FastAccept:
    def __init__(self, app: ASGIApp, respond: Callable[[dict[str, Any], bool], Response]) -> None:
        self.app = app
        self._respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization")
        key = headers.get(b"idempotency-key")
        if (
            auth is None
            or not headers.get(b"content-type", b"").startswith(b"application/json")
            or (key is not None and len(key) > _MAX_IDEMPOTENCY_KEY)
        ):
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        st = scope["app"].state.services
        try:
            scheme, _, token = auth.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthError("not a bearer token")
            who = authenticate(token, st.settings)
            cmd = PlaceOrder.model_validate_json(body)
        except (AuthError, ValidationError, ValueError):
            await self.app(scope, _replay(messages, receive), send)  # FastAPI answers it
            return
        try:
            placed = await st.place_order(who, cmd, key.decode("latin-1") if key else None)
        except Exception as exc:
            response = errors.response_for(exc)
            if response is None:
                raise  # Starlette's ServerErrorMiddleware: the app's 500 handler
            await response(scope, receive, send)
            return
        await self._respond(*placed)(scope, receive, send)


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole request body, and the messages it came in (to replay them)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client left: let the app see it
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
