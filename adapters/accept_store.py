"""The accept path's SQL: one statement per batch of concurrent orders (group commit) claims the
customer ids, stores each order allowed by its customer's owner with its first timeline row and
its `order.created` outbox row, and reports the owners it saw.

Customer ownership: the first customer principal to name a `customerId` owns it (a row of
`customer_owners`, seeded with the quickstart's pairs by migration 0005). A customer principal
may place orders only for ids it owns; admins act for anyone and claim nothing. The claim and
the order are one statement, so two principals racing for a new id cannot both win: the loser's
`INSERT … ON CONFLICT DO NOTHING` waits for the winner's commit and then sees a conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from adapters.pg import Row, json_rows
from domain.catalog import CURRENCY
from domain.events import Envelope, Topic

Pool = AsyncConnectionPool[AsyncConnection[Row]]

# The session setting migration 0014's trigger reads: the most customer ids one principal may
# claim on a connection that sets it (the gateway's accept pool does; others claim uncapped).
CLAIM_CAP_SETTING = "orders.customer_ids_per_principal"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """One order to store; `admin` principals are not bound by customer ownership."""

    order_id: uuid.UUID
    principal: str
    admin: bool
    customer_id: str
    items: list[dict[str, Any]]
    total: Decimal
    payment_method: str
    created_at: datetime
    event: Envelope
    idempotency_key: str | None
    request_hash: str | None


class Outcome(Enum):
    CREATED = "created"  # stored now
    REPEAT = "repeat"  # an earlier request with the same (principal, Idempotency-Key) stored it
    NOT_OWNER = "not_owner"  # the customer id belongs to another principal: nothing stored
    RETRY = "retry"  # the id was claimed by a concurrent commit (or its claim skipped: the
    # principal at MAX_CUSTOMER_IDS_PER_PRINCIPAL, or busy claiming in another batch), or a
    # repeat's earlier order could not be read after the commit: submit again (nothing stored)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the batch statement did with one request. For REPEAT, `order_id`, `total` and
    `request_hash` are the earlier order's."""

    outcome: Outcome
    order_id: uuid.UUID
    total: Decimal
    request_hash: str | None


_RETRY = Stored(Outcome.RETRY, uuid.UUID(int=0), Decimal(0), None)


async def session_setting(pool: Pool, name: str) -> str | None:
    """The value of setting `name` in the pool's sessions (None: not set)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT current_setting(%s, true) AS v", (name,))
        row = await cur.fetchone()
    return None if row is None or row["v"] in (None, "") else str(row["v"])


async def load_prices(pool: Pool) -> dict[str, Decimal]:
    """The catalog's prices (immutable while running)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT sku, unit_price FROM catalog")
        return {r["sku"]: r["unit_price"] for r in await cur.fetchall()}


# x: the batch, each request with `used`: its (principal, Idempotency-Key) already has an order;
# known: the owners of the ids the batch names, as this statement sees them;
# claim: ids named for the first time (the earliest request of the batch wins) by a request that
# may store an order: not a used key, nor a key repeated earlier in the batch (a request answered
# 422 for reusing a key claims nothing); owner: who owns each id named by a customer (claimed
# now, or before this statement began); ok: the requests allowed to store. An id claimed by a
# commit that ended after this statement began is in neither claim nor owner: its requests come
# back as RETRY. An id already known is not inserted again: a claim is the only insert that runs
# migration 0014's trigger (its per-principal lock and count), never an order for an owned id.
# ins inserts in (principal, key) order, as claim claims in id order: two concurrent batches
# holding the same keys in another order wait for each other's uncommitted rows in one order,
# never in a cycle (a deadlock failed every order of both batches with a 503).
# A claim's time is its order's `created_at` (the gateway's clock), which the owner's view of
# the id's orders compares with theirs (adapters/orders_repo.py): the database's clock there
# let a gateway's drift or a queued batch show an admin's earlier order to the new owner, or
# hide a later one.
# The named ids are a parameter of their own: Postgres cannot see how many rows `x` holds (it
# guesses 100), and `IN (SELECT c FROM x)` made it read all of customer_owners for every batch
# once the table held a few thousand customers (4 ms a batch at 14,000); `= ANY(array)` is one
# index probe per id.
_ACCEPT = (
    "WITH r AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(i uuid, p text, a bool, "
    "c text, it jsonb, t numeric, pm text, ca timestamptz, k text, h text, ev text, n int)), "
    "x AS (SELECT r.*, EXISTS (SELECT 1 FROM orders o "
    "WHERE o.principal = r.p AND o.idempotency_key = r.k) AS used FROM r), "
    "known AS (SELECT customer_id, principal FROM customer_owners "
    "WHERE customer_id = ANY(%s::text[])), "
    "claim AS (INSERT INTO customer_owners (customer_id, principal, claimed_at) "
    "SELECT DISTINCT ON (c) c, p, ca FROM x WHERE NOT a AND NOT used AND NOT EXISTS "
    "(SELECT 1 FROM x y WHERE y.p = x.p AND y.k = x.k AND y.n < x.n) AND NOT EXISTS "
    "(SELECT 1 FROM known WHERE known.customer_id = x.c) ORDER BY c, n "
    "ON CONFLICT DO NOTHING RETURNING customer_id, principal), "
    "owner AS (SELECT customer_id, principal FROM claim UNION ALL "
    "SELECT customer_id, principal FROM known), "
    "ok AS (SELECT * FROM x WHERE a OR EXISTS "
    "(SELECT 1 FROM owner o WHERE o.customer_id = x.c AND o.principal = x.p)), "
    "ins AS (INSERT INTO orders (id, principal, customer_id, status, items, total, "
    "currency, payment_method, created_at, updated_at, idempotency_key, request_hash) "
    "SELECT i, p, c, 'PENDING', it, t, %s, pm, ca, ca, k, h FROM ok ORDER BY p, k, n "
    "ON CONFLICT (principal, idempotency_key) WHERE idempotency_key IS NOT NULL "
    "DO NOTHING RETURNING id, created_at), "
    "timeline AS (INSERT INTO order_events (order_id, status, event, at) "
    "SELECT id, 'PENDING', 'OrderCreated', created_at FROM ins), "
    "queued AS (INSERT INTO outbox (topic, key, payload) "
    "SELECT %s, x.i::text, convert_to(x.ev, 'UTF8') FROM x JOIN ins ON ins.id = x.i) "
    "SELECT id, NULL AS customer_id, NULL AS principal, NULL::int AS n FROM ins "
    "UNION ALL SELECT NULL, customer_id, principal, NULL FROM owner "
    "UNION ALL SELECT NULL, NULL, NULL, n FROM x WHERE used"
)


_COLUMNS = ("i", "p", "a", "c", "it", "t", "pm", "ca", "k", "h", "ev", "n")


def _params(batch: list[NewOrder]) -> tuple[Any, ...]:
    """The batch as one JSON document (see `adapters.pg.recordset`), in arrival order `n`."""
    rows = [
        (
            o.order_id,
            o.principal,
            o.admin,
            o.customer_id,
            o.items,
            o.total,
            o.payment_method,
            o.created_at,
            o.idempotency_key,
            o.request_hash,
            o.event.to_json(),
            n,
        )
        for n, o in enumerate(batch, 1)
    ]
    named = sorted({o.customer_id for o in batch if not o.admin})
    return (json_rows(_COLUMNS, rows), named, CURRENCY, Topic.ORDER_CREATED)


async def insert_batch(pool: Pool, batch: list[NewOrder]) -> list[Stored]:
    """Store a batch in one statement (one round trip, one transaction on an autocommit
    connection: under load each round trip waits for a Postgres backend to be scheduled, and
    two flushers waiting on five of them capped the gateway at ~230 accepts/s)."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(_ACCEPT, _params(batch))
        inserted: set[uuid.UUID] = set()
        used: set[int] = set()  # arrival numbers of requests whose key already has an order
        owners: dict[str, str] = {}
        for r in await cur.fetchall():
            if r["id"] is not None:
                inserted.add(r["id"])
            elif r["n"] is not None:
                used.add(r["n"])
            else:
                owners[r["customer_id"]] = r["principal"]
        outcomes = [_outcome(o, inserted, owners, n in used) for n, o in enumerate(batch, 1)]
        repeats = [o for o, out in zip(batch, outcomes, strict=True) if out is Outcome.REPEAT]
        try:
            keys = [(o.principal, o.idempotency_key) for o in repeats]
            earlier = await _earlier(cur, keys) if repeats else {}
        except psycopg.Error:
            # the batch is committed: its new orders are stored and must be answered as such;
            # only the repeats, whose earlier orders went unread, submit again
            earlier = {}
    return [
        earlier.get((o.principal, str(o.idempotency_key)), _RETRY)
        if out is Outcome.REPEAT
        else Stored(out, o.order_id, o.total, o.request_hash)
        for o, out in zip(batch, outcomes, strict=True)
    ]


def _outcome(
    o: NewOrder, inserted: set[uuid.UUID], owners: dict[str, str], key_used: bool
) -> Outcome:
    if o.order_id in inserted:
        return Outcome.CREATED
    if key_used:
        return Outcome.REPEAT  # its Idempotency-Key already has an order: replay it, or 422
    owner = owners.get(o.customer_id)
    if o.admin or owner == o.principal:
        return Outcome.REPEAT  # allowed, yet not inserted: its Idempotency-Key was used
    return Outcome.RETRY if owner is None else Outcome.NOT_OWNER


async def _earlier(
    cur: AsyncCursor[Row], keys: Sequence[tuple[str, str | None]]
) -> dict[tuple[str, str], Stored]:
    """The orders that earlier requests with these (principal, Idempotency-Key) created."""
    await cur.execute(
        "SELECT id, principal, idempotency_key, total, request_hash FROM orders "
        "WHERE (principal, idempotency_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([p for p, _ in keys], [k for _, k in keys]),
    )
    return {
        (r["principal"], r["idempotency_key"]): Stored(
            Outcome.REPEAT, r["id"], r["total"], r["request_hash"]
        )
        for r in await cur.fetchall()
    }


async def stored_for(pool: Pool, principal: str, key: str) -> Stored | None:
    """The order an earlier request with this (principal, Idempotency-Key) stored, if any."""
    async with pool.connection() as conn, conn.cursor() as cur:
        found = await _earlier(cur, [(principal, key)])
    return found.get((principal, key))


async def claim_refused(pool: Pool, principal: str, customer_id: str, cap: int) -> int | None:
    """How many ids `principal` owns when it owns `cap` or more and not `customer_id`: its
    claim of that id is refused for good (migration 0014). None when a retry may succeed."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS owned, coalesce(bool_or(customer_id = %s), false) AS mine "
            "FROM customer_owners WHERE principal = %s",
            (customer_id, principal),
        )
        row = await cur.fetchone()
    if row is None or row["mine"] or row["owned"] < cap:
        return None
    return int(row["owned"])
