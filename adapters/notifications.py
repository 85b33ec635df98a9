"""SQL of notifications: one row per (order, status), written once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import AsyncConnection

from adapters.pg import Row, recordset, tuples
from domain.events import Envelope
from domain.notifications import Notification


async def record(
    conn: AsyncConnection[Row], rows: Sequence[tuple[Envelope, Notification]]
) -> set[tuple[uuid.UUID, str]]:
    """Insert the messages; returns the `(order, status)` pairs that were new."""
    if not rows:
        return set()
    source, columns, doc = recordset(
        ("uuid", "text", "text", "text", "text", "text"),
        [(e.order_id, m.status, m.customer_id, m.channel, m.template, m.text) for e, m in rows],
    )
    rows_back = await tuples(
        conn,
        # order_at (the partition key) is the time inside the order id: a second message for
        # the same (order, status) meets the first in the same partition (ADR-012)
        "INSERT INTO notifications (order_id, status, customer_id, channel, template, text, "
        f"order_at) SELECT {columns}, uuid7_time(c0) FROM {source} "
        "ON CONFLICT DO NOTHING RETURNING order_id, status",
        (doc,),
    )
    return {(r[0], r[1]) for r in rows_back}


async def statuses(
    conn: AsyncConnection[Row], order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The orders' current statuses, read without locks (the stage changes no order)."""
    cur = await conn.execute("SELECT id, status FROM orders WHERE id = ANY(%s)", (list(order_ids),))
    return {r["id"]: r["status"] for r in await cur.fetchall()}
