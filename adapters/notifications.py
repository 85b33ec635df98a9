"""SQL of notifications: one row per (order, status), written once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import AsyncConnection

from adapters.pg import Row, tuples
from domain.events import Envelope
from domain.notifications import Notification


async def record(
    conn: AsyncConnection[Row], rows: Sequence[tuple[Envelope, Notification]]
) -> set[tuple[uuid.UUID, str]]:
    """Insert the messages; returns the `(order, status)` pairs that were new."""
    if not rows:
        return set()
    rows_back = await tuples(
        conn,
        # order_at (the partition key) is the time inside the order id: a second message for
        # the same (order, status) meets the first in the same partition (ADR-012)
        "INSERT INTO notifications (order_id, status, customer_id, channel, template, text, "
        "order_at) SELECT u.*, uuid7_time(u.order_id) FROM unnest(%s::uuid[], %s::text[], "
        "%s::text[], %s::text[], %s::text[], %s::text[]) "
        "AS u(order_id, status, customer_id, channel, template, text) "
        "ON CONFLICT DO NOTHING RETURNING order_id, status",
        (
            [e.order_id for e, _ in rows],
            [m.status for _, m in rows],
            [m.customer_id for _, m in rows],
            [m.channel for _, m in rows],
            [m.template for _, m in rows],
            [m.text for _, m in rows],
        ),
    )
    return {(r[0], r[1]) for r in rows_back}
