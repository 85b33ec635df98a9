"""The unit of work: the one transaction sequence every pipeline stage runs.

    dedupe claim + lock orders (one statement) → stage decides (loads its state, calls the pure
    domain rule, queues its own writes) → its writes + status moves + timeline + outbox as one
    statement → commit → publish statuses

Stages are small objects (`Stage`) in the actors and consumers; the SQL of the sequence lives
here and the stage-specific SQL in the other adapters modules (cosmicpython, chapter 6).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from adapters.pg import Row, Write, inserting, now, tuples, updating, uuid_array, write_all
from adapters.status import StatusPublisher
from domain.decision import Applied, Decision, Note, OrderView, apply_moves
from domain.events import EVENT_TOPIC, Envelope
from domain.model import OrderStatus

log = logging.getLogger(__name__)


class HasDecision(Protocol):
    @property
    def decision(self) -> Decision: ...


R = TypeVar("R", bound=HasDecision, covariant=True)


class Stage(Protocol[R]):
    """One pipeline stage: `consumer` names its dedupe rows (None: the stage is idempotent by
    its own rows); `locks_orders` says whether it reads orders under their row locks."""

    @property
    def consumer(self) -> str | None: ...

    @property
    def locks_orders(self) -> bool: ...

    async def decide(self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]) -> R:
        """Load what the rule needs, call it, write the stage's own rows; return its result."""
        ...


@dataclass
class Tx:
    """One open transaction: the sequence's statements, in the order the stages use them.

    A stage's writes that return nothing are queued (`write`) and sent with the decision's in
    one statement by `apply` (or, in a transaction that applies no decision, before the commit):
    a stage's transaction is then claim and lock (one statement), its reads, one write and the
    commit. Callbacks given to `after` run once the transaction has ended, told whether it
    committed."""

    conn: AsyncConnection[Row]
    applied: list[Applied] = field(default_factory=list)
    _writes: list[Write] = field(default_factory=list)
    _after: list[Callable[[bool], None]] = field(default_factory=list)

    def write(self, *writes: Write | None) -> None:
        """Queue writes (None: nothing to write) for this transaction's one write statement."""
        self._writes += [w for w in writes if w is not None]

    async def flush(self, *writes: Write | None) -> None:
        """Run the queued writes and `writes` now, as one statement."""
        queued, self._writes = self._writes, []
        await write_all(self.conn, [*queued, *writes])

    def after(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(committed)` when the transaction has ended (committed or not)."""
        self._after.append(callback)

    def ended(self, committed: bool) -> None:
        callbacks, self._after = self._after, []
        for callback in callbacks:
            callback(committed)

    async def claim(self, consumer: str, events: Sequence[Envelope]) -> list[Envelope]:
        """Record events as processed by `consumer`; return those not seen before (dedupe)."""
        if not events:
            return []
        rows = await tuples(
            self.conn,
            f"WITH x AS (SELECT unnest(%s::uuid[]) AS e) {_CLAIM}",
            (uuid_array(e.event_id for e in events), consumer),
        )
        return first_of_each({r[0] for r in rows}, events)

    async def claim_and_lock(
        self, consumer: str, events: Sequence[Envelope]
    ) -> tuple[list[Envelope], dict[uuid.UUID, OrderView]]:
        """`claim`, then `lock` the new events' orders, in one statement (one round trip)."""
        if not events:
            return [], {}
        cur = await self.conn.execute(_CLAIM_AND_LOCK, _claim_params(consumer, events))
        rows = await cur.fetchall()
        new = {r["new"] for r in rows if r["new"] is not None}
        orders = {r["id"]: _view(r) for r in rows if r["id"] is not None}
        return first_of_each(new, events), orders

    async def lock(self, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, OrderView]:
        """Lock orders in id order (concurrent lockers never deadlock) and read them."""
        if not order_ids:
            return {}
        cur = await self.conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ANY(%s::uuid[]) ORDER BY id "
            "FOR UPDATE",
            (uuid_array(set(order_ids)),),
        )
        return {r["id"]: _view(r) for r in await cur.fetchall()}

    async def apply(self, decision: Decision, orders: dict[uuid.UUID, OrderView]) -> list[Applied]:
        """Apply the decision's moves (legal ones only), its notes and its outbox events, with
        the stage's queued writes, in one statement."""
        results = apply_moves(orders, decision.moves)
        done = [a for a in results if a.applied]
        for a in results:
            if not a.applied:  # a rule asked for a move the state machine forbids: a bug
                log.warning(
                    "illegal move not applied: order %s %s → %s (%s)",
                    a.move.order_id,
                    a.previous.value if a.previous else "unknown",
                    a.move.target.value,
                    a.move.event,
                )
        at = now()
        notes = [Note(a.move.order_id, a.move.target, a.move.event, a.move.detail) for a in done]
        emitted = [a.move.emits for a in done if a.move.emits is not None]
        await self.flush(
            _statuses(done, at),
            timeline_rows([*notes, *decision.notes], at),
            outbox_rows([*emitted, *decision.events]),
        )
        self.applied += done
        return results


class UnitOfWork:
    """Runs stages against one pool; publishes applied status changes after the commit."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Row]], redis_url: str) -> None:
        self.pool = pool
        self._status = StatusPublisher(redis_url)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Tx]:
        """A transaction (committed when the block ends without error, queued writes sent
        first); statuses it moved are published once it is committed."""
        tx: Tx | None = None
        committed = False
        try:
            async with self.pool.connection() as conn:
                tx = Tx(conn)
                yield tx
                await tx.flush()  # writes queued by a transaction that applied no decision
            committed = True
        finally:
            if tx is not None:
                tx.ended(committed)
        self._status.post(tx.applied)  # published in the background, after the commit

    async def run(
        self,
        stage: Stage[R],
        events: Sequence[Envelope] = (),
        order_ids: Sequence[uuid.UUID] | None = None,
        lock_timeout_ms: int | None = None,
    ) -> tuple[R, list[Applied]]:
        """The sequence for one batch; returns the stage's result and the outcome of each of its
        moves. `order_ids` (default: the new events' orders) are the orders it locks, waiting
        at most `lock_timeout_ms` for them (`LockNotAvailable`; default: as long as it takes)."""
        async with self.begin() as tx:
            if lock_timeout_ms is not None:
                await tx.conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",)
                )
            if stage.consumer and stage.locks_orders and order_ids is None:
                todo, orders = await tx.claim_and_lock(stage.consumer, events)
            else:
                todo = await tx.claim(stage.consumer, events) if stage.consumer else list(events)
                ids = [e.order_id for e in todo] if order_ids is None else list(order_ids)
                orders = await tx.lock(ids) if stage.locks_orders else {}
            result = await stage.decide(tx, todo, orders)
            applied = await tx.apply(result.decision, orders)
        return result, applied


def first_of_each(new: set[uuid.UUID], events: Sequence[Envelope]) -> list[Envelope]:
    """The events whose ids are in `new`, each once, at its first place in the batch. One fetch
    can carry an event twice (the relay republishes a batch whose commit it did not see, and
    both copies may arrive together); the claim's insert records it once, so the stage must
    see it once, or a rule that is not a status move (a shipment, a notification) runs twice."""
    todo, left = [], set(new)
    for e in events:
        if e.event_id in left:
            left.discard(e.event_id)
            todo.append(e)
    return todo


_ORDER_COLUMNS = "id, status, customer_id, principal, items, total, payment_method"
# The dedupe claim of the events `x(e)` for the consumer named by the next parameter. event_at
# (the partition key) is the time inside the event id: a redelivery meets its first delivery's
# row in the same partition (ADR-012).
_CLAIM = (
    "INSERT INTO processed_events (consumer, event_id, event_at) "
    "SELECT %s, e, uuid7_time(e) FROM x ON CONFLICT DO NOTHING RETURNING event_id"
)
# x: the batch's (event, order) pairs; c: the events claimed now (new to this consumer). A row
# per claimed event (`new`), then a row per locked order: linear in the batch (a claimed-ids
# array on every order row was quadratic, 2,000 x 2,000 ids for a full batch).
_CLAIM_AND_LOCK = (
    "WITH x AS (SELECT * FROM unnest(%s::uuid[], %s::uuid[]) AS x(e, o)), "
    f"c AS ({_CLAIM}) "
    "SELECT event_id AS new, NULL::uuid AS id, NULL AS status, NULL AS customer_id, "
    "NULL AS principal, NULL::jsonb AS items, NULL::numeric AS total, NULL AS payment_method "
    "FROM c UNION ALL SELECT NULL, o.* FROM "
    f"(SELECT {_ORDER_COLUMNS} FROM orders "
    "WHERE id IN (SELECT x.o FROM x JOIN c ON c.event_id = x.e) ORDER BY id FOR UPDATE) o"
)


def _claim_params(consumer: str, events: Sequence[Envelope]) -> tuple[str, str, str]:
    return (
        uuid_array(e.event_id for e in events),
        uuid_array(e.order_id for e in events),
        consumer,
    )


def _view(row: Row) -> OrderView:
    return OrderView(
        row["id"],
        OrderStatus(row["status"]),
        row["customer_id"],
        row["principal"],
        row["items"],
        Decimal(str(row["total"])),
        row["payment_method"],
    )


def last_status_per_order(
    done: Sequence[Applied], at: datetime
) -> list[tuple[str, str | None, datetime, uuid.UUID]]:
    """One row `(status, reason, at, order)` per order (`UPDATE … FROM unnest(…)` applies one
    row per target): an order moved twice in one batch ends in its last status, with its last
    reason."""
    merged: dict[uuid.UUID, tuple[str, str | None, datetime, uuid.UUID]] = {}
    for a in done:
        oid = a.move.order_id
        reason = (a.move.detail or {}).get("reason")
        if reason is None and oid in merged:
            reason = merged[oid][1]
        merged[oid] = (a.move.target.value, reason, at, oid)
    return list(merged.values())


def _statuses(done: list[Applied], at: datetime) -> Write | None:
    return updating(
        "UPDATE orders o SET status = v.status, reason = COALESCE(v.reason, o.reason), "
        "updated_at = v.at",
        ("text", "text", "timestamptz", "uuid"),
        "status, reason, at, id",
        "o.id = v.id",
        last_status_per_order(done, at),
    )


def timeline_rows(notes: Sequence[Note], at: datetime | None = None) -> Write | None:
    """Timeline entries `(order, status, event, detail)`."""
    when = at or now()
    return inserting(
        "INSERT INTO order_events (order_id, status, event, at, detail)",
        ("uuid", "text", "text", "timestamptz", "jsonb"),
        [(n.order_id, n.status.value, n.event, when, n.detail or None) for n in notes],
    )


def outbox_rows(events: Sequence[Envelope]) -> Write | None:
    """Events for the relay, queued in the caller's transaction."""
    return inserting(
        "INSERT INTO outbox (topic, key, payload)",
        ("text", "text", "bytea"),
        [(EVENT_TOPIC[e.type], str(e.order_id), e.to_json()) for e in events],
    )
