"""Customer-facing reads and cancellation of orders (ownership: another customer's order is
reported as not found)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from adapters import orders_repo
from adapters.orders_repo import PageQuery, Pool
from adapters.pg import Row
from adapters.uow import Tx, UnitOfWork
from core.auth import Principal
from domain import ordering
from domain.decision import Decision, OrderView
from domain.errors import InvalidInput, NotFound, Unavailable
from domain.events import Envelope
from serve_app.models import Cancelled, Order, OrderPage
from serve_app.views import order_view

# A cancel waits this long for the order's row lock: a stage's transaction holds it for
# milliseconds, unless the stage waits on a shard that is restarting (then a 503, not a hang).
_CANCEL_LOCK_WAIT_MS = 5000


def _visible(principal: Principal, row: Row | None) -> bool:
    """An admin sees every order; a customer those it placed and those placed (by an admin,
    who acts for anyone) for a customer id it owns."""
    return row is not None and (
        principal.is_admin or principal.sub in (row["principal"], row["owner"])
    )


class OrderService:
    """Reads orders for their owner (or an admin) and cancels them while nothing shipped."""

    def __init__(self, pool: Pool, uow: UnitOfWork):
        self._pool = pool
        self._uow = uow

    async def get(self, principal: Principal, order_id: uuid.UUID) -> Order:
        """One order with its timeline; another customer's order is reported as not found."""
        found = await orders_repo.order_with_timeline(self._pool, order_id)
        if found is None or not _visible(principal, found[0]):
            raise NotFound(f"order {order_id} not found")
        return order_view(*found, viewer=None if principal.is_admin else principal.sub)

    async def status_of(self, principal: Principal, order_id: uuid.UUID) -> tuple[str, datetime]:
        """The current status and when it was set (with the same ownership rule as `get`)."""
        row = await orders_repo.order_status(self._pool, order_id)
        if row is None or not _visible(principal, row):
            raise NotFound(f"order {order_id} not found")
        return str(row["status"]), row["updated_at"]

    async def list(
        self,
        principal: Principal,
        *,
        status: str | None,
        customer_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        """A page of orders, newest first. Customers see only their own."""
        query = PageQuery(
            principal=None if principal.is_admin else principal.sub,
            status=status,
            customer_id=customer_id,
            after=_decode_cursor(cursor) if cursor else None,
            limit=limit + 1,
        )
        rows = await orders_repo.order_page(self._pool, query)
        page = rows[:limit]
        nxt = _encode_cursor(page[-1]) if len(rows) > limit else None
        return OrderPage(items=[order_view(r) for r in page], next_cursor=nxt)

    async def cancel(self, principal: Principal, order_id: uuid.UUID, reason: str) -> Cancelled:
        """Cancel while nothing has shipped; the stages release stock and refund on the event.
        A stage of the unit of work: lock, rule, move + timeline + outbox, publish."""
        owner = (
            None if principal.is_admin else await orders_repo.customer_owner(self._pool, order_id)
        )
        try:
            await self._uow.run(
                _Cancel(order_id, principal, reason, owner),
                order_ids=[order_id],
                lock_timeout_ms=_CANCEL_LOCK_WAIT_MS,
            )
        except psycopg.errors.LockNotAvailable:
            raise Unavailable(
                "the order is being worked on by a stage of the pipeline; retry", retry_after_s=2
            ) from None
        return Cancelled(order_id=str(order_id), status="CANCELLED")


@dataclass
class _Cancel:
    order_id: uuid.UUID
    principal: Principal
    reason: str
    owner: str | None  # who owns the order's customer id
    consumer: str | None = None
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Cancel:
        who = self.principal
        order = orders.get(self.order_id)
        self.decision = ordering.cancel(
            self.order_id, order, who.sub, who.is_admin, self.reason, owner=self.owner
        )
        return self


def _encode_cursor(row: Row) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, oid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(oid)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidInput("invalid cursor: pass nextCursor from the previous page") from exc
