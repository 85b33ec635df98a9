"""`orders get` and `orders watch`: one order as its owner sees it through the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console

from cli import api, render, sse
from core.settings import get_settings

TIMED_OUT = 124  # the exit status of `orders watch` when the time is up (as timeout(1))
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

OrderId = Annotated[
    uuid.UUID, typer.Argument(help="the order's id", metavar="ORDER_ID", show_default=False)
]
Url = Annotated[
    str | None,
    typer.Option(help=f"gateway URL; default ${api.URL_ENV} or the local one", show_default=False),
]
Token = Annotated[
    str | None,
    typer.Option(
        help=f"bearer token, `-` to read it from standard input (given here, it is in the "
        f"command line every local user can read); default ${api.TOKEN_ENV} or an admin token "
        "from JWT_SECRET",
        show_default=False,
    ),
]

Seconds = Annotated[float, typer.Option(help="give up after this many seconds", min=0.1)]


@dataclass(frozen=True, slots=True)
class Change:
    status: str
    event: str
    at: str


@dataclass
class Follower:
    """Turns the stream's events into status changes: a reconnected stream starts over from
    the order's first entry, so entries seen already (by id) are skipped."""

    last_id: int = -1
    status: str | None = None

    def take(self, event: sse.Event) -> Change | None:
        if event.event != "status":
            return None
        if event.id is not None and event.id.isdigit():
            if int(event.id) <= self.last_id:
                return None
            self.last_id = int(event.id)
        data = json.loads(event.data)
        if data.get("status") == self.status:
            return None
        self.status = str(data["status"])
        return Change(self.status, str(data.get("event", "")), str(data.get("at", "")))

    @property
    def done(self) -> bool:
        return render.final(self.status)


def get(
    order_id: OrderId,
    url: Url = None,
    token: Token = None,
    raw: Annotated[bool, typer.Option("--json", help="print the API's JSON as it is")] = False,
) -> None:
    """One order with its timeline, through the API (GET /api/orders/{id})."""
    s = get_settings()
    base = api.base_url(s, url)
    try:
        order = api.get_order(base, api.token(s, token), str(order_id))
    except api.ApiError as exc:
        _refused(exc)
    except httpx.HTTPError as exc:
        _unreachable(base, exc)
    if raw:
        print(json.dumps(order, indent=2))
    else:
        console.print(render.order_view(order))


def watch(
    order_id: OrderId,
    url: Url = None,
    token: Token = None,
    timeout: Seconds = 120.0,
) -> None:
    """Follow an order live until its final status.

    One line per status change, from its Server-Sent Events (GET /api/orders/{id}/events).
    Exits 0 at a final status, 1 on an error (also a gateway that cannot be reached at first),
    124 when --timeout passes first."""
    s = get_settings()
    base = api.base_url(s, url)
    follower = Follower()

    def show(change: Change) -> None:
        console.print(render.change_line(change.status, change.event, change.at))

    try:
        asyncio.run(follow(base, api.token(s, token), str(order_id), follower, show, timeout))
    except api.ApiError as exc:
        _refused(exc)
    except httpx.TransportError as exc:
        _unreachable(base, exc)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except TimeoutError:
        last = follower.status or "no status seen"
        errors.print(f"[yellow]timed out after {timeout:g}s; last status: {last}[/yellow]")
        raise typer.Exit(TIMED_OUT) from None


async def follow(
    url: str,
    bearer: str,
    order_id: str,
    follower: Follower,
    show: Callable[[Change], None],
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
    retry_s: float = 1.0,
) -> None:
    """Read the stream until the order is final, reconnecting when it drops (gateway restart,
    the server's own stream limit); raises TimeoutError after `timeout_s`, ApiError on a 4xx,
    httpx.TransportError when the gateway never answered (nothing at that URL: no retries)."""
    reached = False

    def answered() -> None:
        nonlocal reached
        reached = True

    async with (
        asyncio.timeout(timeout_s),
        httpx.AsyncClient(
            base_url=url, timeout=httpx.Timeout(10.0, read=None), transport=transport
        ) as client,
    ):
        quiet = False  # one notice per outage, not one per retry
        while not follower.done:
            try:
                events = api.status_events(client, bearer, order_id, answered)
                async with contextlib.aclosing(events) as stream:
                    async for event in stream:
                        change = follower.take(event)
                        if change is not None:
                            show(change)
                        quiet = False
                        if follower.done:
                            return
            except api.ApiError as exc:
                if not exc.retryable:
                    raise
                if not quiet:
                    errors.print(f"[dim]gateway answered {exc.status}; retrying[/dim]")
                quiet = True
            except httpx.TransportError as exc:
                if not reached:
                    raise
                if not quiet:
                    why = type(exc).__name__
                    errors.print(f"[dim]no stream from {url} ({why}); retrying[/dim]")
                quiet = True
            await asyncio.sleep(retry_s)


def _refused(exc: api.ApiError) -> NoReturn:
    """The API's answer, and for a rejected token what to give instead; exit 1."""
    hint = f"; {api.TOKEN_HINT}" if exc.status == 401 else ""
    errors.print(f"[red]{exc.message}[/red] ({exc.status} {exc.code}){hint}")
    raise typer.Exit(1)


def _unreachable(base: str, exc: httpx.HTTPError) -> NoReturn:
    """Nothing answered at `base`: why, and where to look next; exit 1."""
    errors.print(f"[red]cannot reach {base}: {str(exc) or type(exc).__name__}[/red]")
    errors.print(api.DOWN_HINT)
    raise typer.Exit(1)
