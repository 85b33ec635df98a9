"""SQL of the outbox relay: take a batch of rows (deleted in the transaction that reads them),
count the backlog, say whether the relay waits, and listen for new rows (a statement trigger
NOTIFYs `outbox` while the relay waits: migration 0009)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

import psycopg
from psycopg import AsyncConnection

from adapters.pg import Row, tuples

Conn = AsyncConnection[Row]


class Taken(NamedTuple):
    """A take's rows `(topic, key, payload)` in id order, their highest id, and its snapshot's
    bounds: `xmin` (every transaction below it has ended) and `xmax` (none at or above it had
    started). `actors/outbox_floor.py` turns them into the next take's floor."""

    rows: list[tuple[str, str, bytes]]
    max_id: int
    xmin: int
    xmax: int


async def take(conn: Conn, limit: int, floor: int = 0) -> Taken:
    """Delete and return up to `limit` rows with ids above `floor`, lowest first. The caller
    commits only after Kafka acknowledged them, so a crash in between republishes the batch.
    The scan starts at `floor`: the entries of rows deleted below it are not walked again."""
    found = await tuples(
        conn,
        "WITH snap AS (SELECT pg_snapshot_xmin(s)::text::bigint AS lo, "
        "pg_snapshot_xmax(s)::text::bigint AS hi FROM pg_current_snapshot() AS s), "
        "gone AS (DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id > %s "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, topic, key, payload) "
        "SELECT snap.lo, snap.hi, gone.id, gone.topic, gone.key, gone.payload "
        "FROM snap LEFT JOIN gone ON true",
        (floor, limit),
    )
    xmin, xmax = found[0][0], found[0][1]
    rows = sorted((r for r in found if r[2] is not None), key=lambda r: r[2])
    return Taken(
        [(r[3], r[4], bytes(r[5])) for r in rows], rows[-1][2] if rows else floor, xmin, xmax
    )


async def any_below(conn: Conn, floor: int) -> bool:
    """Whether a row at or below `floor` exists (the floor's safety check: none should)."""
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM outbox WHERE id <= %s) AS x", (floor,))
    row = await cur.fetchone()
    return bool(row and row["x"])


async def set_waiting(conn: Conn, waiting: bool) -> None:
    """Whether the relay waits for a NOTIFY (the trigger sends one only then). An upsert: the
    table is UNLOGGED, empty after a crash of Postgres (which the trigger reads as waiting)."""
    await conn.execute(
        "INSERT INTO outbox_relay (id, waiting) VALUES (1, %s) "
        "ON CONFLICT (id) DO UPDATE SET waiting = EXCLUDED.waiting",
        (waiting,),
    )


async def backlog(conn: Conn) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM outbox")
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def notifications(dsn: str) -> AsyncIterator[None]:
    """Yields once when listening starts and once per NOTIFY on `outbox`."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    async with conn:
        await conn.execute("LISTEN outbox")
        yield None
        async for _ in conn.notifies():
            yield None
