"""The gateway as the CLI uses it: a short-lived admin token minted from JWT_SECRET (or one
given), one order with its timeline, and an order's live status stream (SSE)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx
import typer

from cli import sse
from core.auth import make_token
from core.settings import Settings

URL_ENV = "ORDERS_API_URL"
TOKEN_ENV = "ORDERS_TOKEN"
TOKEN_HINT = f"token rejected: export the stack's JWT_SECRET or pass --token/{TOKEN_ENV}"
DOWN_HINT = "is the stack up? `make status` shows each part, `make up` starts it"
TOKEN_SUBJECT = "orders-cli"
_TOKEN_TTL_S = 3600


class ApiError(Exception):
    """A non-2xx answer of the gateway, with its error envelope's code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """A gateway restarting or shedding load (5xx, 429) may answer on the next try."""
        return self.status >= 500 or self.status == 429


def base_url(settings: Settings, given: str | None = None) -> str:
    """`given`, else $ORDERS_API_URL, else the local gateway (`local_gateway`)."""
    if given or os.environ.get(URL_ENV):
        return (given or os.environ[URL_ENV]).rstrip("/")
    return local_gateway(settings)


def local_gateway(settings: Settings) -> str:
    """This machine's gateway: `HTTP_HOST`:`HTTP_PORT`, loopback for a wildcard host (as
    cluster/common.sh's `gateway_url`), an IPv6 address in brackets."""
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def token(settings: Settings, given: str | None = None) -> str:
    """`given` (`-`: the first line of standard input), else $ORDERS_TOKEN, else an admin token
    signed with JWT_SECRET (1 h). A token given as such is in the command line, which every
    local user may read (/proc/PID/cmdline): `-` and $ORDERS_TOKEN keep it out."""
    if given == "-":
        read = sys.stdin.readline().strip()
        if not read:
            raise typer.BadParameter("--token -: no token on standard input")
        return read
    if given or os.environ.get(TOKEN_ENV):
        return given or os.environ[TOKEN_ENV]
    return make_token(
        TOKEN_SUBJECT,
        ["admin"],
        secret=settings.jwt_secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        ttl_s=_TOKEN_TTL_S,
    )


def error_of(status: int, body: bytes) -> ApiError:
    """The `{"error": {"code", "message"}}` envelope of a failed answer (or its raw text)."""
    try:
        err = httpx.Response(status, content=body).json()["error"]
        return ApiError(status, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        text = body.decode(errors="replace").strip()[:200]
        return ApiError(status, "http_error", text or httpx.codes.get_reason_phrase(status))


def get_order(url: str, bearer: str, order_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """`GET /api/orders/{id}`: the order with its timeline, as its owner would see it."""
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        resp = client.get(f"/api/orders/{order_id}", headers=_auth(bearer))
    if resp.status_code != 200:
        raise error_of(resp.status_code, resp.content)
    return json_object(resp)


def json_object(resp: httpx.Response) -> dict[str, Any]:
    """A successful answer's JSON object; anything else (a proxy's HTML page, a cut body) is an
    ApiError naming what came instead."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = resp.content.decode(errors="replace").strip()[:200] or "an empty body"
        raise ApiError(resp.status_code, "not_json", f"the answer is no JSON object: {text}")
    return body


async def status_events(
    client: httpx.AsyncClient,
    bearer: str,
    order_id: str,
    answered: Callable[[], None] = lambda: None,
) -> AsyncGenerator[sse.Event, None]:
    """The events of `GET /api/orders/{id}/events` until the server ends the stream;
    `answered()` once the gateway has answered (whatever its status)."""
    path = f"/api/orders/{order_id}/events"
    headers = _auth(bearer) | {"Accept": "text/event-stream"}
    async with client.stream("GET", path, headers=headers) as resp:
        answered()
        if resp.status_code != 200:
            raise error_of(resp.status_code, await resp.aread())
        parser = sse.Parser()
        async for line in resp.aiter_lines():
            event = parser.feed(line)
            if event is not None:
                yield event


def readiness(url: str, bearer: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """`GET /ready` as an admin: the overall status and one check per dependency and actor."""
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        resp = client.get("/ready", headers=_auth(bearer))
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        raise error_of(resp.status_code, resp.content)
    return body


def _auth(bearer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer}"}
