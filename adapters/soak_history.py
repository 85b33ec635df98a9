"""A long history written in SQL for the soak figure (bench/soak.py): finished orders spread
over the past days with what the pipeline leaves behind for each one (timeline, dedupe rows,
notifications, a committed reservation, a captured payment, a delivered shipment).

Written by `generate_series`, a chunk of orders per transaction, never by the pipeline: millions
of orders in minutes. Every id is a UUIDv7 of its row's time, like the platform's, so each row
lands in the partition of its day; the days' partitions are made first (pg_partman), or the rows
would go to the default partitions, which no retention pass drops. Preloaded orders belong to
principals `soak-<n>`: nothing the platform or a benchmark does touches them. Needs the role
that owns the tables (making partitions is DDL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from adapters.pg import Row
from adapters.retention import TABLES

Conn = AsyncConnection[Row]
PREFIX = "soak-"

_UUID7 = """
CREATE OR REPLACE FUNCTION pg_temp.soak_uuid7(at timestamptz) RETURNS uuid
LANGUAGE sql VOLATILE AS $$
  SELECT encode(set_byte(overlay(b
      PLACING substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3 FOR 6)
      FROM 1 FOR 6), 6, 112 + (get_byte(b, 6) & 15)), 'hex')::uuid
  FROM (SELECT uuid_send(gen_random_uuid()) AS b) AS r
$$
"""

# One chunk: orders `lo..hi` of `total`, spread evenly over `span` back from now, newest last.
_CHUNK = """
CREATE TEMP TABLE soak_chunk ON COMMIT DROP AS
SELECT g, at, pg_temp.soak_uuid7(at) AS id, 'SKU-' || (1 + mod(g, 80)) AS sku
FROM (SELECT g, now() - %(span)s::interval * (1 - g::float8 / %(total)s) AS at
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g) AS s
"""

_STEPS = ("PENDING", "RESERVED", "PAID", "SHIPPED", "DELIVERED")
_WRITES = (
    "INSERT INTO orders (id, principal, customer_id, status, items, total, currency, "
    "payment_method, created_at, updated_at) SELECT id, %(prefix)s || mod(g, 5000), "
    "%(prefix)s || 'c-' || mod(g, 5000), 'DELIVERED', jsonb_build_array(jsonb_build_object("
    "'sku', sku, 'qty', 1, 'unitPrice', 10)), 10, 'EUR', 'card', at, at + interval '1 second' "
    "FROM soak_chunk",
    "INSERT INTO order_events (order_id, status, event, at) SELECT c.id, s.status, "
    "'Soak' || s.status, c.at + s.n * interval '100 ms' FROM soak_chunk c "
    "CROSS JOIN unnest(%(steps)s::text[]) WITH ORDINALITY AS s(status, n)",
    "INSERT INTO notifications (order_id, status, customer_id, channel, template, text, "
    "created_at, order_at) SELECT c.id, s.status, %(prefix)s || 'c-' || mod(c.g, 5000), 'email', "
    "'status', 'Your order is ' || s.status, c.at + s.n * interval '100 ms', uuid7_time(c.id) "
    "FROM soak_chunk c CROSS JOIN unnest(%(notified)s::text[]) WITH ORDINALITY AS s(status, n)",
    # the n-th event of an order: the order id with its time moved n × 100 ms on (unique, v7)
    "INSERT INTO processed_events (consumer, event_id, event_at) SELECT consumer, id, "
    "uuid7_time(id) FROM (SELECT s.consumer, encode(overlay(uuid_send(c.id) PLACING "
    "substring(int8send((extract(epoch FROM c.at) * 1000)::bigint + s.n * 100) FROM 3 FOR 6) "
    "FROM 1 FOR 6), 'hex')::uuid AS id FROM soak_chunk c "
    "CROSS JOIN unnest(%(consumers)s::text[]) WITH ORDINALITY AS s(consumer, n)) AS e",
    "INSERT INTO reservations (order_id, sku, customer_id, principal, qty, state, expires_at, "
    "updated_at) SELECT id, sku, %(prefix)s || 'c-' || mod(g, 5000), %(prefix)s || mod(g, 5000), "
    "1, 'COMMITTED', at + interval '5 minutes', at FROM soak_chunk",
    "INSERT INTO payments (order_id, customer_id, amount, status, provider_ref, created_at, "
    "updated_at) SELECT id, %(prefix)s || 'c-' || mod(g, 5000), 10, 'CAPTURED', 'soak', at, at "
    "FROM soak_chunk",
    "INSERT INTO shipments (order_id, tracking, status, updated_at) SELECT id, 'T' || g, "
    "'DELIVERED', at FROM soak_chunk",
)


async def make_partitions(conn: Conn, span: timedelta) -> None:
    """The daily partitions of the last `span` for every partitioned table (pg_partman)."""
    for t in TABLES:
        await conn.execute(
            "SELECT partman.create_partition_time(current_schema() || '.' || %s, "
            "ARRAY(SELECT generate_series(date_trunc('day', now() - %s::interval), now(), "
            "interval '1 day')))",
            (t.table, span),
        )


async def preload(
    dsn: str,
    orders: int,
    span: timedelta,
    chunk: int = 250_000,
    sessions: int = 2,
    done: Callable[[int], Awaitable[None]] | None = None,
) -> int:
    """Write `orders` finished orders spread over `span`, `chunk` orders per transaction, over
    `sessions` connections at once (one core each); `done(n)` after each chunk with the orders
    written so far. Returns the number written."""
    async with await _connect(dsn) as conn:
        await make_partitions(conn, span)
    params = {
        "span": span,
        "total": orders,
        "prefix": PREFIX,
        "steps": list(_STEPS),
        "notified": list(_STEPS[1:]),
        "consumers": ["inventory", "payment", "shipping", "order"],
    }
    chunks = [(lo, min(orders, lo + chunk) - 1) for lo in range(0, orders, chunk)]
    written = [0]

    async def session(mine: list[tuple[int, int]]) -> None:
        async with await _connect(dsn) as conn:
            await conn.execute(_UUID7)
            # a bulk load: a crash loses at most the last chunks, which a new run writes again
            await conn.execute("SET synchronous_commit = off")
            for lo, hi in mine:
                async with conn.transaction():
                    await conn.execute(_CHUNK, {**params, "lo": lo, "hi": hi})
                    for statement in _WRITES:
                        await conn.execute(statement, params)
                written[0] += hi - lo + 1
                if done is not None:
                    await done(written[0])

    await asyncio.gather(*(session(chunks[i::sessions]) for i in range(max(1, sessions))))
    return written[0]


async def _connect(dsn: str) -> Conn:
    return await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


OTHER_TABLES = ("orders", "reservations", "payments", "shipments")


async def table_sizes(conn: Conn) -> dict[str, dict[str, int]]:
    """Bytes (with indexes) and estimated rows of the tables that are not partitioned."""
    cur = await conn.execute(
        "SELECT relname, pg_total_relation_size(oid) AS bytes, "
        "greatest(reltuples, 0)::bigint AS rows FROM pg_class "
        "WHERE relname = ANY(%s) AND relnamespace = current_schema()::regnamespace",
        (list(OTHER_TABLES),),
    )
    return {r["relname"]: {"bytes": r["bytes"], "rows": r["rows"]} for r in await cur.fetchall()}


async def analyze(conn: Conn) -> None:
    """Fresh planner statistics after a bulk load (autovacuum never analyzes a partitioned
    table's parent; its partitions it would, minutes later)."""
    for table in (*OTHER_TABLES, *(t.table for t in TABLES)):
        await conn.execute(f"ANALYZE {table}")
