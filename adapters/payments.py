"""SQL of payments: the ledger of authorizations per order (primary key = order id)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from psycopg import AsyncConnection

from adapters.pg import Row, Write, inserting, uuid_array
from domain.payment import AUTHORIZED

Conn = AsyncConnection[Row]
PaymentRow = tuple[uuid.UUID, str, Decimal, str, str | None, str | None]


async def outstanding(conn: Conn) -> dict[str, Decimal]:
    """Authorized, not yet captured or refunded, per customer."""
    cur = await conn.execute(
        "SELECT customer_id, sum(amount) AS s FROM payments WHERE status = %s GROUP BY customer_id",
        (AUTHORIZED,),
    )
    return {r["customer_id"]: Decimal(str(r["s"])) for r in await cur.fetchall()}


def recording(rows: Sequence[PaymentRow]) -> Write | None:
    """Insert `(order, customer, amount, status, reason, provider ref)` rows (for `Tx.write`).
    The primary key makes a second charge of the same order fail the whole transaction."""
    return inserting(
        "INSERT INTO payments (order_id, customer_id, amount, status, reason, provider_ref)",
        ("uuid", "text", "numeric", "text", "text", "text"),
        rows,
    )


async def settle(
    conn: Conn, order_ids: Sequence[uuid.UUID], target: str
) -> list[tuple[uuid.UUID, str, Decimal]]:
    """AUTHORIZED → `target` (CAPTURED or REFUNDED) once; returns `(order, customer, amount)` of
    the rows that changed."""
    cur = await conn.execute(
        "UPDATE payments SET status = %s, updated_at = now() "
        "WHERE order_id = ANY(%s::uuid[]) AND status = %s RETURNING order_id, customer_id, amount",
        (target, uuid_array(order_ids), AUTHORIZED),
    )
    return [
        (r["order_id"], r["customer_id"], Decimal(str(r["amount"]))) for r in await cur.fetchall()
    ]
