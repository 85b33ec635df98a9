"""SQL of shipments: one row per paid order, its step and its dev fault flag."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import AsyncConnection

from adapters.pg import Row, Write, inserting, updating, uuid_array
from domain.shipping import CREATED, SHIPPED, Shipment

Conn = AsyncConnection[Row]


async def in_flight(
    conn: Conn, order_ids: Sequence[uuid.UUID] | None = None
) -> list[tuple[uuid.UUID, str, float]]:
    """`(order, status, seconds since that status)` of every shipment that has a step left
    (timers rebuild from it), or of those of `order_ids`."""
    query = (
        "SELECT order_id, status, extract(epoch FROM clock_timestamp() - updated_at)::float8"
        " AS age FROM shipments WHERE status IN (%s, %s)"
    )
    if order_ids is None:
        cur = await conn.execute(query, (CREATED, SHIPPED))
    else:
        cur = await conn.execute(
            query + " AND order_id = ANY(%s::uuid[])", (CREATED, SHIPPED, uuid_array(order_ids))
        )
    return [(r["order_id"], r["status"], r["age"] or 0.0) for r in await cur.fetchall()]


def creating(shipments: Sequence[Shipment]) -> Write | None:
    """Insert new shipments (for `Tx.write`); one that exists already stays as it is."""
    return inserting(
        "INSERT INTO shipments (order_id, tracking, status, fail)",
        ("uuid", "text", "text", "bool"),
        [(s.order_id, s.tracking, s.status, s.fail) for s in shipments],
        "ON CONFLICT DO NOTHING",
    )


async def lock(conn: Conn, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Shipment]:
    cur = await conn.execute(
        "SELECT order_id, status, fail, tracking FROM shipments WHERE order_id = "
        "ANY(%s::uuid[]) ORDER BY order_id FOR UPDATE",
        (uuid_array(order_ids),),
    )
    return {
        r["order_id"]: Shipment(r["order_id"], r["status"], r["fail"], r["tracking"])
        for r in await cur.fetchall()
    }


def moving(updates: Sequence[tuple[str, uuid.UUID]]) -> Write | None:
    """Set `(status, order)` pairs, one statement (for `Tx.write`)."""
    return updating(
        "UPDATE shipments s SET status = v.status, updated_at = now()",
        ("text", "uuid"),
        "status, order_id",
        "s.order_id = v.order_id",
        updates,
    )
