"""SQL of payments: the ledger of authorizations per order (primary key = order id)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from psycopg import AsyncConnection

from adapters.pg import Row, Write, inserting, uuid_array
from domain.payment import AUTHORIZED

Conn = AsyncConnection[Row]
PaymentRow = tuple[uuid.UUID, str, Decimal, str, str | None, str | None]


# the partial index of the open authorizations (migration 0016) serves it: its predicate is
# matched by the literal (a parameter's generic plan could not use the index)
OUTSTANDING = (
    f"SELECT customer_id, sum(amount) AS s FROM payments WHERE status = '{AUTHORIZED}' "  # noqa: S608 (a constant)
    "GROUP BY customer_id"
)


async def outstanding(conn: Conn) -> dict[str, Decimal]:
    """Authorized, not yet captured or refunded, per customer."""
    cur = await conn.execute(OUTSTANDING)
    return {r["customer_id"]: Decimal(str(r["s"])) for r in await cur.fetchall()}


def recording(rows: Sequence[PaymentRow]) -> Write | None:
    """Insert `(order, customer, amount, status, reason, provider ref)` rows (for `Tx.write`).
    The primary key makes a second charge of the same order fail the whole transaction."""
    return inserting(
        "INSERT INTO payments (order_id, customer_id, amount, status, reason, provider_ref)",
        ("uuid", "text", "numeric", "text", "text", "text"),
        rows,
    )


class Settlement(NamedTuple):
    """What `settle` did: `(order, customer, amount)` of each authorization settled now, and
    the orders asked for that do not exist."""

    settled: list[tuple[uuid.UUID, str, Decimal]]
    unknown: set[uuid.UUID]


async def overdue(
    conn: Conn, settled_before: datetime, statuses: Sequence[str], limit: int = 500
) -> list[tuple[uuid.UUID, str, str]]:
    """`(order id, customer id, order status)` of authorizations still open on orders that
    ended in one of `statuses` (due a refund or a capture) before `settled_before`: their
    settling event was dead-lettered, or its handling never finished. (The open
    authorizations are few: `ix_payments_authorized`, migration 0016.)"""
    cur = await conn.execute(
        "SELECT p.order_id, p.customer_id, o.status FROM payments p "
        "JOIN orders o ON o.id = p.order_id WHERE p.status = %s "
        "AND o.status = ANY(%s) AND o.updated_at < %s LIMIT %s",
        (AUTHORIZED, list(statuses), settled_before, limit),
    )
    return [(r["order_id"], r["customer_id"], r["status"]) for r in await cur.fetchall()]


async def settle(conn: Conn, order_ids: Sequence[uuid.UUID], target: str) -> Settlement:
    """AUTHORIZED → `target` (CAPTURED or REFUNDED) once; returns the rows that changed and,
    from the same statement (a primary-key probe of `orders` per order), the orders that do
    not exist."""
    ids = uuid_array(order_ids)
    cur = await conn.execute(
        "WITH s AS (UPDATE payments SET status = %s, updated_at = now() "
        "WHERE order_id = ANY(%s::uuid[]) AND status = %s "
        "RETURNING order_id, customer_id, amount) "
        "SELECT order_id, customer_id, amount, false AS unknown FROM s "
        "UNION ALL SELECT u.id, NULL, NULL, true FROM unnest(%s::uuid[]) AS u(id) "
        "WHERE NOT EXISTS (SELECT FROM orders o WHERE o.id = u.id)",
        (target, ids, AUTHORIZED, ids),
    )
    rows = await cur.fetchall()
    return Settlement(
        [
            (r["order_id"], r["customer_id"], Decimal(str(r["amount"])))
            for r in rows
            if not r["unknown"]
        ],
        {r["order_id"] for r in rows if r["unknown"]},
    )
