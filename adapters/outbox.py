"""SQL of the outbox relay: take a batch of rows (deleted in the transaction that reads them),
count the backlog, say whether the relay waits, and listen for new rows (a statement trigger
NOTIFYs `outbox` while the relay waits: migration 0009)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
from psycopg import AsyncConnection

from adapters.pg import Row, tuples

Conn = AsyncConnection[Row]


async def take(conn: Conn, limit: int) -> list[tuple[str, str, bytes]]:
    """Delete and return up to `limit` rows `(topic, key, payload)` in id order. The caller
    commits only after Kafka acknowledged them, so a crash in between republishes the batch."""
    rows = await tuples(
        conn,
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT %s "
        "FOR UPDATE SKIP LOCKED) RETURNING id, topic, key, payload",
        (limit,),
    )
    rows.sort(key=lambda r: r[0])
    return [(r[1], r[2], bytes(r[3])) for r in rows]


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
