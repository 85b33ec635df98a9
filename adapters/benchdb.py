"""The benchmark's reads of Postgres (`make bench`): stock before and after a run, the outcome
of tracked orders, and counts of a phase's orders. Read-only, on an autocommit connection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.rows import TupleRow

from adapters import audit

Conn = psycopg.AsyncConnection[TupleRow]
# (order id, status, created_at, updated_at, times of its timeline entries STAGES, None where
# it has none; the last one is SHIPPED)
Outcome = tuple[uuid.UUID, str, datetime, datetime, tuple[datetime | None, ...]]
# The pipeline's stages after the accept, each by the timeline event that records it.
STAGES = ("StockReserved", "PaymentAuthorized", "ShipmentCreated", "ShipmentShipped")

# Every order of the run's customers, also those the gateway stored after the client gave up
# waiting (no 202 seen, so not tracked): an oversell by those would count all the same.
_SHIPPED_UNITS = (
    "SELECT i->>'sku', sum((i->>'qty')::int) FROM orders o, jsonb_array_elements(o.items) i "
    "WHERE o.principal = ANY(%s) AND EXISTS (SELECT 1 FROM order_events e "
    "WHERE e.order_id = o.id AND e.status = 'SHIPPED') GROUP BY 1"
)
_OUTCOMES = (
    "SELECT o.id, o.status, o.created_at, o.updated_at, s.* FROM orders o, LATERAL (SELECT "
    + ", ".join(f"min(e.at) FILTER (WHERE e.event = '{event}')" for event in STAGES)
    + " FROM order_events e WHERE e.order_id = o.id) s "
    "WHERE o.id = ANY(%s) AND o.status = ANY(%s)"
)
_BURST = (
    "SELECT count(*), count(*) FILTER (WHERE status <> ALL(%s)), "
    "extract(epoch FROM min(created_at)), "
    "extract(epoch FROM max(updated_at) FILTER (WHERE status = ANY(%s))) "
    "FROM orders WHERE principal = ANY(%s)"
)
_IDS = "SELECT id::text FROM orders WHERE created_at >= %s AND principal LIKE %s"
# The same over every order of a whole run (principal LIKE, created since), for `bench.oversell`.
_RUN_SHIPPED_UNITS = (
    "SELECT i->>'sku', sum((i->>'qty')::int) FROM orders o, jsonb_array_elements(o.items) i "
    "WHERE o.created_at >= %s AND o.principal LIKE %s AND EXISTS (SELECT 1 FROM order_events e "
    "WHERE e.order_id = o.id AND e.status = 'SHIPPED') GROUP BY 1"
)
_RUN_OPEN = (
    "SELECT id::text, status FROM orders "
    "WHERE created_at >= %s AND principal LIKE %s AND status <> ALL(%s) ORDER BY created_at"
)
_OPEN = "SELECT id FROM orders WHERE principal = ANY(%s) AND status <> ALL(%s)"
_PHASE = (
    "SELECT count(*), count(*) FILTER (WHERE status = ANY(%s)) FROM orders "
    "WHERE created_at >= %s AND principal LIKE %s"
)


# The Postgres backends of the benchmark's own connections (`connect`): the CPU they use is the
# measuring side's, not the platform's (bench.procs.CpuSampler counts them as `bench`).
OWN_BACKENDS: set[int] = set()


async def connect(dsn: str) -> Conn:
    """An autocommit connection (each read sees the latest commits)."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    OWN_BACKENDS.add(conn.info.backend_pid)
    return conn


async def open_ids(
    conn: Conn, principals: Sequence[str], terminal: Sequence[str]
) -> set[uuid.UUID]:
    """The orders of `principals` stored and not `terminal`."""
    cur = await conn.execute(_OPEN, (list(principals), list(terminal)))
    return {r[0] for r in await cur.fetchall()}


async def inventory(conn: Conn) -> dict[str, tuple[int, int]]:
    """`sku → (on_hand, reserved)` of every SKU."""
    cur = await conn.execute("SELECT sku, on_hand, reserved FROM inventory")
    return {str(sku): (int(on), int(res)) for sku, on, res in await cur.fetchall()}


async def orders_of(conn: Conn, principals: Sequence[str]) -> int:
    """How many orders the `principals` have stored."""
    cur = await conn.execute(
        "SELECT count(*) FROM orders WHERE principal = ANY(%s)", (list(principals),)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def shipped_units(conn: Conn, principals: Sequence[str]) -> dict[str, int]:
    """`sku → units` shipped (a SHIPPED timeline entry) in orders of `principals`."""
    cur = await conn.execute(_SHIPPED_UNITS, (list(principals),))
    return {str(sku): int(units) for sku, units in await cur.fetchall()}


async def run_shipped_units(conn: Conn, since: datetime, principal_like: str) -> dict[str, int]:
    """`sku → units` shipped (a SHIPPED timeline entry) in the orders created since `since`
    whose principal matches `principal_like` (SQL LIKE): every order of a whole run."""
    cur = await conn.execute(_RUN_SHIPPED_UNITS, (since, principal_like))
    return {str(sku): int(units) for sku, units in await cur.fetchall()}


async def run_open_orders(
    conn: Conn, since: datetime, principal_like: str, terminal: Sequence[str]
) -> list[tuple[str, str]]:
    """`(order id, status)` of the orders created since `since` whose principal matches
    `principal_like` (SQL LIKE) and that are not `terminal`, oldest first."""
    cur = await conn.execute(_RUN_OPEN, (since, principal_like, list(terminal)))
    return [(str(oid), str(status)) for oid, status in await cur.fetchall()]


async def stock_violations(conn: Conn) -> int:
    """SKUs that break the stock invariants (on_hand < 0, reserved < 0, reserved > on_hand).
    The table's CHECK constraints refuse such rows, so this is a check of the schema, not of
    the platform: the invariants a run can break (reserved = the open holds, no hold left on
    a finished order) are `adapters.audit`'s, which `bench.end_audit` runs."""
    cur = await conn.execute(
        "SELECT count(*) FROM inventory WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand"
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def outcomes(conn: Conn, ids: Sequence[uuid.UUID], terminal: Sequence[str]) -> list[Outcome]:
    """The orders of `ids` in a `terminal` status, with their times."""
    cur = await conn.execute(_OUTCOMES, (list(ids), list(terminal)))
    return [(r[0], str(r[1]), r[2], r[3], tuple(r[4:])) for r in await cur.fetchall()]


async def burst(
    conn: Conn, principals: Sequence[str], terminal: Sequence[str]
) -> tuple[int, int, float | None, float | None]:
    """Orders of `principals`: how many, how many not `terminal` yet, the first one's creation
    and the last terminal one's update (epoch seconds)."""
    cur = await conn.execute(_BURST, (list(terminal), list(terminal), list(principals)))
    row = await cur.fetchone()
    assert row is not None
    first = float(row[2]) if row[2] is not None else None
    last = float(row[3]) if row[3] is not None else None
    return int(row[0]), int(row[1]), first, last


async def phase_counts(
    conn: Conn, terminal: Sequence[str], since: datetime, principal_like: str
) -> tuple[int, int]:
    """Orders created since `since` whose principal matches `principal_like` (SQL LIKE): how
    many, and how many of them are `terminal`."""
    cur = await conn.execute(_PHASE, (list(terminal), since, principal_like))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def order_ids(conn: Conn, since: datetime, principal_like: str) -> list[str]:
    """The ids of the orders created since `since` whose principal matches `principal_like`
    (SQL LIKE): every order of a run's customers."""
    cur = await conn.execute(_IDS, (since, principal_like))
    return [str(r[0]) for r in await cur.fetchall()]


async def database_size(conn: Conn) -> dict[str, int]:
    """The database's size on disk and its orders, estimated as `make status` does
    (`audit.TABLE_SIZES`: the statistics' live rows, else the planner's; no count): what a
    run started on, so that two runs' figures can be compared knowingly (docs/performance.md)."""
    size = await (await conn.execute("SELECT pg_database_size(current_database())")).fetchone()
    orders = await (await conn.execute(audit.TABLE_SIZES, (["orders"],))).fetchone()
    assert size is not None and orders is not None, "the orders table is missing"
    return {"size_bytes": int(size[0]), "orders_estimate": int(orders[2])}


async def maintenance(conn: Conn) -> int:
    """Vacuums and analyzes running right now, autovacuum's or anyone's (their progress views
    list every one to every role)."""
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM pg_stat_progress_vacuum) "
        "+ (SELECT count(*) FROM pg_stat_progress_analyze)"
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
