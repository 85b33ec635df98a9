"""Customer-facing reads and cancellation of orders (ownership: another customer's order is
reported as not found)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from adapters.pg import Row, apply_transitions, insert_outbox, lock_orders
from core.auth import Principal
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import new_event
from domain.model import CANCELLABLE, OrderStatus
from serve_app.views import order_view


class OrderService:
    """Reads orders for their owner (or an admin) and cancels them while nothing shipped."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Row]]):
        self._pool = pool

    async def get(self, principal: Principal, order_id: uuid.UUID) -> dict[str, Any]:
        """One order with its timeline; another customer's order is reported as not found."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM orders WHERE id = %s", (order_id,))
            row = await cur.fetchone()
            if row is None or not (principal.is_admin or row["principal"] == principal.sub):
                raise NotFound(f"order {order_id} not found")
            cur = await conn.execute(
                "SELECT status, event, at, detail FROM order_events "
                "WHERE order_id = %s ORDER BY id",
                (order_id,),
            )
            return order_view(row, await cur.fetchall())

    async def status_of(self, principal: Principal, order_id: uuid.UUID) -> str:
        """The current status (with the same ownership rule as `get`)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, principal FROM orders WHERE id = %s", (order_id,)
            )
            row = await cur.fetchone()
        if row is None or not (principal.is_admin or row["principal"] == principal.sub):
            raise NotFound(f"order {order_id} not found")
        return str(row["status"])

    async def list(
        self,
        principal: Principal,
        *,
        status: str | None,
        customer_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        """A page of orders, newest first. Customers see only their own."""
        where: list[str] = []
        args: list[Any] = []
        if not principal.is_admin:
            where.append("principal = %s")
            args.append(principal.sub)
        if status:
            where.append("status = %s")
            args.append(status)
        if customer_id:
            where.append("customer_id = %s")
            args.append(customer_id)
        if cursor:
            created, oid = _decode_cursor(cursor)
            where.append("(created_at, id) < (%s, %s)")
            args.extend([created, oid])
        sql = "SELECT * FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
        args.append(limit + 1)
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, args)
            rows = await cur.fetchall()
        page = rows[:limit]
        nxt = _encode_cursor(page[-1]) if len(rows) > limit else None
        return {"items": [order_view(r) for r in page], "nextCursor": nxt}

    async def cancel(
        self, principal: Principal, order_id: uuid.UUID, reason: str
    ) -> dict[str, Any]:
        """Cancel while nothing has shipped; the stages release stock and refund on the event."""
        async with self._pool.connection() as conn:
            locked = await lock_orders(conn, [order_id])
            row = locked.get(order_id)
            if row is None or not (principal.is_admin or row["principal"] == principal.sub):
                raise NotFound(f"order {order_id} not found")
            status = OrderStatus(row["status"])
            if status not in CANCELLABLE:
                raise Conflict(
                    f"order is {status.value}: only PENDING, RESERVED or PAID orders can be "
                    "cancelled",
                    {"status": status.value},
                )
            detail = {"reason": reason, "by": principal.sub}
            await apply_transitions(
                conn, locked, [(order_id, OrderStatus.CANCELLED, "OrderCancelled", detail)]
            )
            event = new_event(
                "OrderCancelled",
                order_id,
                reason=reason,
                customerId=row["customer_id"],
                previous=status.value,
            )
            await insert_outbox(conn, [event])
        return {"orderId": str(order_id), "status": OrderStatus.CANCELLED.value}


def _encode_cursor(row: Row) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, oid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(oid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor: pass nextCursor from the previous page") from exc
