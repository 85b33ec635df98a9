"""The gateway's application service: accept, read, list and cancel orders.

The accept path is one Postgres transaction (order row + timeline + outbox row), shared with
concurrent requests through group commit, then 202. Everything after that is asynchronous.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.auth import Principal
from core.db import Row, apply_transitions, insert_outbox, lock_orders, now
from core.group_commit import GroupCommit
from domain.catalog import CURRENCY, order_total
from domain.commands import PlaceOrder, merge_lines
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import Envelope, new_event
from domain.model import CANCELLABLE, OrderStatus
from serve_app.views import order_view


@dataclass(frozen=True, slots=True)
class _NewOrder:
    order_id: uuid.UUID
    principal: str
    customer_id: str
    items: list[dict[str, Any]]
    total: Decimal
    payment_method: str
    created_at: datetime
    event: Envelope


class OrderService:
    """Owns the order rows' creation and the customer-facing reads."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Row]], prices: dict[str, Decimal]):
        self._pool = pool
        self._prices = prices
        self._commit: GroupCommit[_NewOrder] = GroupCommit(self._insert_batch)

    @staticmethod
    async def load_prices(pool: AsyncConnectionPool[AsyncConnection[Row]]) -> dict[str, Decimal]:
        """The catalog's prices (immutable while running; prices never come from clients)."""
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT sku, unit_price FROM catalog")
            return {r["sku"]: r["unit_price"] for r in await cur.fetchall()}

    async def close(self) -> None:
        await self._commit.close()

    async def place(self, principal: Principal, cmd: PlaceOrder) -> dict[str, Any]:
        """Validate against the catalog, store the order and its `OrderCreated` event durably."""
        merged = merge_lines(list(cmd.items))
        unknown = sorted(sku for sku in merged if sku not in self._prices)
        if unknown:
            raise InvalidInput("unknown sku: use a sku from the catalog", {"skus": unknown})
        too_many = sorted(sku for sku, qty in merged.items() if qty > 1000)
        if too_many:
            raise InvalidInput("qty per sku must be 1..1000", {"skus": too_many})
        items = [
            {"sku": sku, "qty": qty, "unitPrice": str(self._prices[sku])}
            for sku, qty in merged.items()
        ]
        total = order_total([(qty, self._prices[sku]) for sku, qty in merged.items()])
        order_id = uuid.uuid4()
        created = now()
        event = new_event(
            "OrderCreated",
            order_id,
            customerId=cmd.customer_id,
            principal=principal.sub,
            items=items,
            total=str(total),
            currency=CURRENCY,
            paymentMethod=cmd.payment_method,
        )
        await self._commit.submit(
            _NewOrder(
                order_id,
                principal.sub,
                cmd.customer_id,
                items,
                total,
                cmd.payment_method,
                created,
                event,
            )
        )
        return {
            "orderId": str(order_id),
            "status": OrderStatus.PENDING.value,
            "total": float(total),
            "currency": CURRENCY,
            "links": {
                "self": f"/api/orders/{order_id}",
                "events": f"/api/orders/{order_id}/events",
                "cancel": f"/api/orders/{order_id}/cancel",
            },
        }

    async def _insert_batch(self, batch: list[_NewOrder]) -> None:
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO orders (id, principal, customer_id, status, items, total, currency, "
                "payment_method, created_at, updated_at) "
                "VALUES (%s, %s, %s, 'PENDING', %s::jsonb, %s, %s, %s, %s, %s)",
                [
                    (
                        o.order_id,
                        o.principal,
                        o.customer_id,
                        json.dumps(o.items),
                        o.total,
                        CURRENCY,
                        o.payment_method,
                        o.created_at,
                        o.created_at,
                    )
                    for o in batch
                ],
            )
            await cur.executemany(
                "INSERT INTO order_events (order_id, status, event, at) "
                "VALUES (%s, 'PENDING', 'OrderCreated', %s)",
                [(o.order_id, o.created_at) for o in batch],
            )
            await insert_outbox(conn, [o.event for o in batch])

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
