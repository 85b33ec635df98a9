"""SQL of the outbox relay: take a batch of rows (deleted in the transaction that reads them),
count the backlog, say whether the relay waits, and listen for new rows (a statement trigger
NOTIFYs `outbox` while the relay waits: migration 0009)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

import psycopg
from psycopg import AsyncConnection

from adapters.pg import Row, bounded, tuples

Conn = AsyncConnection[Row]


class Taken(NamedTuple):
    """A take's rows `(topic, key, payload)` in id order and their highest id; its snapshot's
    `xmin` (every transaction below it had ended) and its own xid, assigned by its delete after
    the snapshot was taken (every xid handed out before the snapshot is lower; 0 when it deleted
    nothing). `actors/outbox_floor.py` turns them into the next take's floor."""

    rows: list[tuple[str, str, bytes]]
    max_id: int
    xmin: int
    xid: int


async def take(conn: Conn, limit: int, floor: int = 0) -> Taken:
    """Delete and return up to `limit` rows with ids above `floor`, lowest first. The caller
    commits only after Kafka acknowledged them, so a crash in between republishes the batch.
    The scan starts at `floor`: the entries of rows deleted below it are not walked again."""
    found = await tuples(
        conn,
        "WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS lo), "
        "gone AS (DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id > %s "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING id, topic, key, payload, pg_current_xact_id()::text::bigint AS xid) "
        "SELECT snap.lo, gone.xid, gone.id, gone.topic, gone.key, gone.payload "
        "FROM snap LEFT JOIN gone ON true",
        (floor, limit),
    )
    rows = sorted((r for r in found if r[2] is not None), key=lambda r: r[2])
    if not rows:  # nothing deleted: the transaction has no xid (and needs none)
        return Taken([], floor, found[0][0], 0)
    return Taken([(r[3], r[4], bytes(r[5])) for r in rows], rows[-1][2], found[0][0], rows[0][1])


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
    """Yields once when listening starts and once per NOTIFY on `outbox`. With libpq's bounds
    (`CLIENT_TIMEOUTS`): an idle LISTEN on a server gone away fails within ~25 s and the relay
    listens again, instead of waiting on a dead socket."""
    conn = await psycopg.AsyncConnection.connect(bounded(dsn), autocommit=True)
    async with conn:
        await conn.execute("LISTEN outbox")
        yield None
        async for _ in conn.notifies():
            yield None
