"""Postgres access: an async psycopg 3 pool per process and small helpers used by every owner."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.events import EVENT_TOPIC, Envelope
from domain.model import OrderStatus, can_transition

Row = dict[str, Any]
log = logging.getLogger(__name__)


async def check_if_suspect(conn: AsyncConnection[Any]) -> None:
    """The pool's check on checkout, with a round trip only when the connection looks wrong.

    An idle healthy connection has nothing to read. When Postgres ends a session (restart,
    `pg_terminate_backend`, crash) it sends an error or closes the socket, which then reads as
    ready: only then is the server asked (`SELECT ''`), and a failure makes the pool drop the
    connection and hand out another. The unconditional check cost every transaction one more
    round trip, i.e. one more wake-up of a backend and of the caller on a busy box (ADR-008)."""
    if conn.broken or conn.closed:
        raise psycopg.OperationalError("connection is closed")
    poller = select.poll()  # not select(): a Ray worker may hold descriptors above 1024
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    dsn: str, size: int, name: str, *, autocommit: bool = False
) -> AsyncConnectionPool[AsyncConnection[Row]]:
    """Open a pool and wait until its first connection works (fails fast on a bad DSN)."""
    pool: AsyncConnectionPool[AsyncConnection[Row]] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=size,
        name=name,
        open=False,
        kwargs={"row_factory": dict_row, "autocommit": autocommit},
        connection_class=AsyncConnection[Row],
        check=check_if_suspect,
    )
    await pool.open(wait=True, timeout=30)
    return pool


def now() -> datetime:
    return datetime.now(UTC)


async def insert_rows(
    conn: AsyncConnection[Row],
    head: str,
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
    tail: str = "",
) -> None:
    """`head SELECT * FROM unnest(%s::type[], …) tail`: all rows in one statement, one array
    parameter per column (`types`: the Postgres type of each column, e.g. `("uuid", "text")`).

    The statement's text does not depend on the number of rows, so psycopg parses it once and
    Postgres prepares it after a few runs. With adaptive batching (ADR-013) every batch size
    made the multi-row `VALUES` form a new statement: psycopg's query splitting was the largest
    Python cost of the shipping actor and the inventory shards in a profile at 300 orders/s.
    """
    if rows:
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        columns = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(f"{head} SELECT * FROM unnest({arrays}) {tail}".rstrip(), columns)


async def update_rows(
    conn: AsyncConnection[Row],
    update: str,
    types: Sequence[str],
    columns: str,
    where: str,
    rows: Sequence[Sequence[Any]],
) -> None:
    """`update FROM unnest(%s::type[], …) AS v(columns) WHERE where`: many rows, one statement
    whose text does not depend on their number (see `insert_rows`)."""
    if rows:
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        values = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(f"{update} FROM unnest({arrays}) AS v({columns}) WHERE {where}", values)


# Bind parameters per statement; Postgres allows 65,535, chunks stay well below.
_MAX_PARAMS = 20_000


async def insert_values(
    conn: AsyncConnection[Row],
    head: str,
    row: str,
    rows: Sequence[Sequence[Any]],
    tail: str = "",
) -> None:
    """`head VALUES row, row, … tail` as one statement per chunk of rows.

    One multi-row statement instead of `executemany` (one statement per row): measured on this
    box for 30 rows, 0.47 instead of 0.78 ms of client CPU and 0.37 instead of 0.53 ms of
    Postgres CPU (docs/performance.md, fifth round). `row` is the placeholder tuple of one row,
    e.g. `"(%s, %s, 'HELD')"`.
    """
    await _values_statements(conn, f"{head} VALUES ", row, rows, f" {tail}" if tail else "")


async def update_from_values(
    conn: AsyncConnection[Row],
    update: str,
    row: str,
    columns: str,
    where: str,
    rows: Sequence[Sequence[Any]],
) -> None:
    """`update FROM (VALUES row, …) AS v(columns) WHERE where`: many rows, one statement.

    Cast every placeholder in `row` (e.g. `"(%s::uuid, %s::text)"`): a VALUES list in FROM has
    no target columns to take its types from.
    """
    await _values_statements(
        conn, f"{update} FROM (VALUES ", row, rows, f") AS v({columns}) WHERE {where}"
    )


async def _values_statements(
    conn: AsyncConnection[Row],
    prefix: str,
    row: str,
    rows: Sequence[Sequence[Any]],
    suffix: str,
) -> None:
    if not rows:
        return
    width = len(rows[0])
    step = max(1, _MAX_PARAMS // max(1, width))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        params = [value for r in chunk for value in r]
        await conn.execute(f"{prefix}{', '.join([row] * len(chunk))}{suffix}", params)


async def insert_outbox(conn: AsyncConnection[Row], events: Sequence[Envelope]) -> None:
    """Queue events for the relay, in the caller's transaction."""
    await insert_values(
        conn,
        "INSERT INTO outbox (topic, key, payload)",
        "(%s, %s, %s)",
        [(EVENT_TOPIC[e.type], str(e.order_id), e.to_json()) for e in events],
    )


async def claim_events(
    conn: AsyncConnection[Row], consumer: str, event_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Record events as processed by `consumer`; return the ids that were new (dedupe)."""
    ids = list(event_ids)
    if not ids:
        return set()
    cur = await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) SELECT %s, unnest(%s::uuid[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (consumer, ids),
    )
    return {r["event_id"] for r in await cur.fetchall()}


class Transition:
    """The result of applying one status change to an order row (see `apply_transition`)."""

    __slots__ = ("order_id", "previous", "status", "event", "applied", "row")

    def __init__(
        self,
        order_id: uuid.UUID,
        previous: OrderStatus | None,
        status: OrderStatus,
        event: str,
        applied: bool,
        row: Row | None,
    ) -> None:
        self.order_id = order_id
        self.event = event
        self.previous = previous
        self.status = status
        self.applied = applied
        self.row = row


async def lock_orders(
    conn: AsyncConnection[Row], order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Row]:
    """Lock the given orders (in id order, so concurrent lockers never deadlock)."""
    if not order_ids:
        return {}
    cur = await conn.execute(
        "SELECT id, status, customer_id, principal, items, total, payment_method "
        "FROM orders WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (sorted(set(order_ids)),),
    )
    return {r["id"]: r for r in await cur.fetchall()}


def _last_per_order(
    updates: Sequence[tuple[str, str | None, datetime, uuid.UUID]],
) -> list[tuple[str, str | None, datetime, uuid.UUID]]:
    """One row per order for `UPDATE … FROM (VALUES …)` (which applies one row per target):
    an order moved twice in one batch ends in its last status, with its last reason."""
    merged: dict[uuid.UUID, tuple[str, str | None, datetime, uuid.UUID]] = {}
    for status, reason, at, order_id in updates:
        before = merged.get(order_id)
        if reason is None and before is not None:
            reason = before[1]
        merged[order_id] = (status, reason, at, order_id)
    return list(merged.values())


_TIMELINE = "INSERT INTO order_events (order_id, status, event, at, detail)"
_TIMELINE_ROW = "(%s, %s, %s, %s, %s::jsonb)"


async def apply_transitions(
    conn: AsyncConnection[Row],
    locked: dict[uuid.UUID, Row],
    changes: Sequence[tuple[uuid.UUID, OrderStatus, str, dict[str, Any] | None]],
) -> list[Transition]:
    """Move locked orders through the state machine and append to their timelines.

    `changes` holds `(order_id, target, event_name, detail)`. An illegal move is not applied and
    comes back with `applied=False`; the caller decides what that means (usually: compensate).
    """
    at = now()
    results: list[Transition] = []
    updates: list[tuple[str, str | None, datetime, uuid.UUID]] = []
    timeline: list[tuple[uuid.UUID, str, str, datetime, str | None]] = []
    for order_id, target, event_name, detail in changes:
        row = locked.get(order_id)
        if row is None:
            results.append(Transition(order_id, None, target, event_name, False, None))
            continue
        current = OrderStatus(row["status"])
        if not can_transition(current, target):
            results.append(Transition(order_id, current, target, event_name, False, row))
            continue
        row["status"] = target.value
        reason = (detail or {}).get("reason")
        updates.append((target.value, reason, at, order_id))
        timeline.append(
            (order_id, target.value, event_name, at, json.dumps(detail) if detail else None)
        )
        results.append(Transition(order_id, current, target, event_name, True, row))
    await update_from_values(
        conn,
        "UPDATE orders o SET status = v.status, reason = COALESCE(v.reason, o.reason), "
        "updated_at = v.at",
        "(%s::text, %s::text, %s::timestamptz, %s::uuid)",
        "status, reason, at, id",
        "o.id = v.id",
        _last_per_order(updates),
    )
    await insert_values(conn, _TIMELINE, _TIMELINE_ROW, timeline)
    return results


async def append_timeline(
    conn: AsyncConnection[Row],
    entries: Sequence[tuple[uuid.UUID, str, str, dict[str, Any] | None]],
) -> None:
    """Timeline entries that do not change the status: `(order_id, status, event, detail)`."""
    at = now()
    await insert_values(
        conn,
        _TIMELINE,
        _TIMELINE_ROW,
        [(oid, st, ev, at, json.dumps(d) if d else None) for oid, st, ev, d in entries],
    )


async def claim_ownership(dsn: str, key: str, timeout_s: float = 60.0) -> AsyncConnection[Row]:
    """Hold a Postgres advisory lock named `key` for as long as the returned connection lives.

    A shard actor calls this before loading its state, so there is never a second owner of the
    same SKUs or ledgers, not even from a second Ray cluster on the same database (a RayService
    upgrade runs two clusters side by side). A killed owner's connection closes and frees the
    lock for its restarted self.
    """
    conn = await AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row, application_name=f"owner:{key}"
    )
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (key,))
        row = await cur.fetchone()
        if row and row["ok"]:
            return conn
        if asyncio.get_running_loop().time() > deadline:
            await conn.close()
            raise RuntimeError(
                f"{key} is owned by another process (advisory lock held): is a second "
                "deployment using the same DATABASE_URL? Stop it, or wait for it to exit."
            )
        await asyncio.sleep(0.5)


async def watch_ownership(conn: AsyncConnection[Row], key: str, every_s: float = 2.0) -> None:
    """End this process when the connection holding `key`'s advisory lock is gone.

    A Postgres restart (or a terminated backend) takes the lock with it; a shard that went on
    without it could run next to a second owner. So the process exits, Ray restarts the actor
    (`max_restarts=-1`) and its `__init__` claims the lock again before reloading its state.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            await conn.execute("SELECT 1")
        except psycopg.Error as exc:
            log.error("%s lost its advisory lock (%s); restarting to claim it again", key, exc)
            logging.shutdown()
            os._exit(1)
