"""The gate in front of every route (pure ASGI, so it also covers 404s, /docs and the SSE
stream): header rules and the body limit before anything is parsed, security headers on every
answer.

- a repeated `Authorization` (or `Content-Type`, `Content-Length`, `Idempotency-Key`) → 400;
- a body that is not `application/json` → 415, on any route;
- a body over `MAX_BODY_BYTES` → 413, declared or streamed (chunked uploads too);
- every response: `Cache-Control: no-store` (answers are per principal and may hold personal
  data: no cache may keep them) and `X-Content-Type-Options: nosniff`;
- HEAD: served as the GET of the same path with the same checks, its headers without the body
  (RFC 9110: a server that has GET has HEAD), except on a live stream (a path ending in
  `/events`: a HEAD there would hold a stream slot open for nothing), which answers 405.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.errors import NO_HEAD_SUFFIX, RequestRejected, error_response
from serve_app.strict import has_body, require_json, single_headers

SECURITY_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)
_REPLACED = {name for name, _ in SECURITY_HEADERS}


class Gate:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secured = _secured(send)
        if scope["method"] == "HEAD" and not scope["path"].endswith(NO_HEAD_SUFFIX):
            scope, secured = {**scope, "method": "GET"}, _secured(_without_body(send))
        try:
            self._check_head(scope)
        except RequestRejected as exc:
            response = error_response(exc.status, exc.code, exc.message)
            await response(scope, receive, secured)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, secured)
        except _BodyTooLarge:
            await self._too_large()(scope, receive, secured)

    def _check_head(self, scope: Scope) -> None:
        headers = single_headers(scope["headers"])
        if not has_body(headers):
            return
        require_json(headers.get(b"content-type"))
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            raise RequestRejected(400, "bad_request", "Content-Length is not a number") from None
        if declared > self.max_body_bytes:
            raise self._too_large_error()

    def _too_large_error(self) -> RequestRejected:
        return RequestRejected(
            413, "payload_too_large", f"request body over {self.max_body_bytes} bytes"
        )

    def _too_large(self) -> ASGIApp:
        exc = self._too_large_error()
        return error_response(exc.status, exc.code, exc.message)


def _without_body(send: Send) -> Send:
    """`send` with every body chunk emptied: a HEAD's answer is the GET's headers only (the
    Content-Length the GET's would have)."""

    async def headless(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return headless


def _secured(send: Send) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _REPLACED]
            message = {**message, "headers": [*kept, *SECURITY_HEADERS]}
        await send(message)

    return secured


class _BodyTooLarge(Exception):
    pass
