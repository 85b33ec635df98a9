"""Live order status over Server-Sent Events: one event per status change, closing at a
terminal status. Redis pub/sub carries the changes; Postgres is re-read on subscribe and
periodically, so nothing is missed if a message is (Redis restarting, for example).

- A reconnecting client's `Last-Event-ID` (an event's `id`, the timeline row's) resumes after
  that event instead of replaying the order's history; once it has seen the final status the
  route answers 204, which tells an `EventSource` to stop reconnecting.
- An order whose timeline rows retention dropped (`ORDER_HISTORY_DAYS`) still gets one event:
  its current status from the order's row (`event` null, `id` "current"); a reconnect that
  names it is not sent that status again (204 when it is final).
- Postgres not answering (a restart, a pool with no free connection) does not end a stream: it
  re-reads every re-check period until its deadline, as while Redis is down; the response has
  begun, so an error raised then would only cut the stream short with a traceback.
- A stream ends when its token would no longer pass (`Principal.valid_until`: its `exp`, or its
  `iat` + `JWT_MAX_AGE_S`), or after `_MAX_STREAM_S`, whichever comes first; the client
  reconnects with `Last-Event-ID` and a token that passes.
- Each stream holds one of the replica's `MAX_ONGOING_REQUESTS` for as long as it is open (up to
  `_MAX_STREAM_S`): at most `SSE_MAX_STREAMS` are open per replica (503 past it), at most
  `SSE_MAX_STREAMS_PER_PRINCIPAL` per principal (429), so streams never take the slots orders
  need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import PoolTimeout
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from adapters.orders_repo import Pool, timeline_after, timeline_status_of
from adapters.pg import Row
from adapters.status import channel
from domain.errors import RateLimited, Unavailable
from domain.model import OrderStatus, is_terminal

log = logging.getLogger(__name__)
_RECHECK_S = 2.0
_MAX_STREAM_S = 600.0
# what a short Postgres outage raises (QueryCanceled, a statement timeout, is an OperationalError)
_POSTGRES_DOWN = (psycopg.OperationalError, PoolTimeout)


# The `id` of the event that reports the order row's status when its timeline is gone: sent
# back as `Last-Event-ID`, it tells the route the client has seen that status.
CURRENT_ID = "current"


def _event(
    order_id: uuid.UUID, status: str, event: str | None, at: datetime, row_id: int | str
) -> dict[str, Any]:
    data = {"orderId": str(order_id), "status": status, "event": event, "at": at.isoformat()}
    return {"event": "status", "data": orjson.dumps(data).decode(), "id": str(row_id)}


async def status_stream(
    pool: Pool,
    redis: aioredis.Redis,
    order_id: uuid.UUID,
    current: tuple[str, datetime],
    after_id: int = 0,
    last_status: str | None = None,
    until: float | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield SSE events `{event: "status", id, data}` for each status change of the order after
    timeline row `after_id`; `current` is the order row's (status, updated_at), read by the
    route, for an order whose timeline is gone; `last_status` the status the client has seen
    (not sent again); `until` (epoch seconds) when the client's token stops passing."""
    pubsub = redis.pubsub()
    try:  # everything that may fail or be cancelled is inside: the connection goes back
        subscribed = await _subscribe(pubsub, order_id)
        last_id = after_id
        lasts = _MAX_STREAM_S if until is None else min(_MAX_STREAM_S, until - time.time())
        deadline = asyncio.get_running_loop().time() + lasts
        rows = await _timeline(pool, order_id, last_id, deadline)
        if rows is None:  # Postgres did not answer for the stream's whole life
            return
        if not rows and not after_id:  # retention dropped the timeline: the order row's status
            if current[0] != last_status:
                yield _event(order_id, current[0], None, current[1], CURRENT_ID)
            if is_terminal(OrderStatus(current[0])):
                return
            last_status = current[0]
        while asyncio.get_running_loop().time() < deadline:
            for row in rows:
                last_id = row["id"]
                if row["status"] == last_status:
                    continue  # a timeline entry that did not change the status
                last_status = row["status"]
                yield _event(order_id, row["status"], row["event"], row["at"], row["id"])
                if is_terminal(OrderStatus(row["status"])):
                    return
            # wait for a pub/sub nudge (or the re-check period), then re-read Postgres
            subscribed = subscribed or await _subscribe(pubsub, order_id)
            if not subscribed or not await _nudged(pubsub):
                await asyncio.sleep(_RECHECK_S)  # Redis down: the periodic re-read goes on
            rows = await _timeline(pool, order_id, last_id, deadline) or []
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _timeline(
    pool: Pool, order_id: uuid.UUID, after_id: int, deadline: float
) -> list[Row] | None:
    """The order's timeline rows after `after_id`; while Postgres does not answer, read again
    each re-check period (one warning per outage, no traceback: the outage is not this code's
    bug); None when the stream's deadline passes first."""
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        try:
            return await timeline_after(pool, order_id, after_id)
        except _POSTGRES_DOWN as exc:
            failures += 1
            level = logging.WARNING if failures == 1 else logging.DEBUG
            log.log(
                level,
                "live stream of %s: Postgres unavailable (%s), re-reading every %ss",
                order_id,
                type(exc).__name__,
                _RECHECK_S,
            )
        if loop.time() + _RECHECK_S >= deadline:
            return None
        await asyncio.sleep(_RECHECK_S)


async def _subscribe(pubsub: PubSub, order_id: uuid.UUID) -> bool:
    """Subscribe to the order's channel; False when Redis does not answer (the stream tries
    again each re-check: a stream opened during a Redis outage gets its nudges once it is back;
    once subscribed, redis-py reconnects and subscribes again by itself)."""
    try:
        await pubsub.subscribe(channel(str(order_id)))
    except (RedisError, OSError):
        return False
    return True


async def _nudged(pubsub: PubSub) -> bool:
    """Wait up to the re-check period for a nudge; False when Redis does not answer."""
    try:
        await pubsub.get_message(ignore_subscribe_messages=True, timeout=_RECHECK_S)
    except (RedisError, OSError):
        return False
    return True


def after_row(seen: int | str) -> int:
    """The timeline row a stream resumes after: `seen`'s, none (0) for `CURRENT_ID`, which
    reported an order without rows."""
    return seen if isinstance(seen, int) else 0


class LiveStatus:
    """The SSE stream's resources: the read pool, the Redis client (pub/sub) and the replica's
    count of open streams (in total and per principal)."""

    def __init__(self, pool: Pool, redis: aioredis.Redis, total: int, per_principal: int) -> None:
        self._pool = pool
        self._redis = redis
        self._total = total
        self._per_principal = per_principal
        self._open: Counter[str] = Counter()

    def reserve(self, principal: str) -> Callable[[], None]:
        """Count one more stream of `principal`, or raise (503 when the replica has its most
        open, 429 when the principal has); returns the release, idempotent."""
        if self._open.total() >= self._total:
            raise Unavailable(
                f"this replica has {self._total} live status streams open (SSE_MAX_STREAMS); "
                "retry later, or read GET /api/orders/{id}",
                retry_after_s=5,
            )
        if self._open[principal] >= self._per_principal:
            raise RateLimited(
                f"{self._per_principal} live status streams open for this principal "
                "(SSE_MAX_STREAMS_PER_PRINCIPAL); close one first",
                retry_after_s=5,
            )
        self._open[principal] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[principal] -= 1
                if self._open[principal] <= 0:
                    del self._open[principal]

        return release

    async def seen_final(self, order_id: uuid.UUID, status: str, seen: int | str) -> bool:
        """Whether a client that saw event `seen` (a timeline row's id, or `CURRENT_ID`; 0:
        none) has seen everything there is: the order is final and no row follows it."""
        if not seen or not is_terminal(OrderStatus(status)):
            return False
        return not await timeline_after(self._pool, order_id, after_row(seen))

    async def seen(
        self, order_id: uuid.UUID, given: str, status: str
    ) -> tuple[int | str, str | None]:
        """What a client's `Last-Event-ID` says it saw: `(event, its status)`. An id this stream
        gives (a row of this order's timeline, or `CURRENT_ID` with `status`, the order row's
        that it reported); anything else, another order's row or a row retention dropped
        included, is `(0, None)`: nothing seen, the stream starts from the first event (ASCII
        digits only: a header is read as latin-1, and "²" is a digit int() refuses)."""
        if given == CURRENT_ID:
            # sent only while the order had no timeline row, and retention only deletes: a row
            # there now came after it, so `status` (the order's now) is not what it reported
            newer = await timeline_after(self._pool, order_id, 0)
            return CURRENT_ID, None if newer else status
        row_id = int(given) if given.isascii() and given.isdigit() and len(given) <= 18 else 0
        saw = await timeline_status_of(self._pool, order_id, row_id) if row_id else None
        return (row_id, saw) if saw is not None else (0, None)

    def stream(
        self,
        order_id: uuid.UUID,
        current: tuple[str, datetime],
        after_id: int,
        last_status: str | None,
        until: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        return status_stream(
            self._pool, self._redis, order_id, current, after_id, last_status, until
        )
