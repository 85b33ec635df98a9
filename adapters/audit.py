"""What an operator reads to judge the platform: the invariants of a run's orders (`orders
chaos`), and for `orders status` the size of each table and the consumer groups' offsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from psycopg.rows import dict_row

from adapters.kafka import client_options

Row = dict[str, Any]
Conn = psycopg.Connection[Row]


@contextmanager
def connect(dsn: str) -> Iterator[Conn]:
    """One connection whose rows are dicts; closed (and committed) when the block ends."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        yield conn


def count_in_status(dsn: str, ids: Sequence[str], statuses: Sequence[str]) -> int:
    """How many of the orders `ids` are in one of `statuses`."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM orders WHERE id = ANY(%s::uuid[]) AND status = ANY(%s)",
            (list(ids), list(statuses)),
        ).fetchone()
    return int(row[0]) if row else 0


def statuses(conn: Conn, ids: Sequence[str]) -> dict[str, str]:
    """`order id → status` of the orders `ids` that exist."""
    return {
        str(r["id"]): r["status"]
        for r in conn.execute(
            "SELECT id, status FROM orders WHERE id = ANY(%s::uuid[])", (list(ids),)
        )
    }


def broken_stock(conn: Conn) -> list[Row]:
    """SKUs whose bookkeeping is wrong: on hand below zero, more reserved than on hand, or a
    reserved count that differs from the sum of the open holds."""
    return conn.execute(
        "SELECT i.sku, i.on_hand, i.reserved, coalesce(h.q, 0) AS held FROM inventory i "
        "LEFT JOIN (SELECT sku, sum(qty) AS q FROM reservation_holds GROUP BY sku) h "
        "ON h.sku = i.sku "
        "WHERE i.on_hand < 0 OR i.reserved > i.on_hand OR i.reserved <> coalesce(h.q, 0)"
    ).fetchall()


def holds_out_of_step(conn: Conn, ids: Sequence[str]) -> list[Row]:
    """`{order_id, sku, state, open_hold}` of the orders `ids`' reservations whose state and
    open hold disagree: a HELD reservation has exactly one row in `reservation_holds`, a
    closed one none (migration 0011)."""
    return conn.execute(
        "SELECT r.order_id, r.sku, r.state, h.order_id IS NOT NULL AS open_hold "
        "FROM reservations r LEFT JOIN reservation_holds h USING (order_id, sku) "
        "WHERE r.order_id = ANY(%s::uuid[]) AND (r.state = 'HELD') <> (h.order_id IS NOT NULL) "
        "UNION ALL SELECT h.order_id, h.sku, NULL, true FROM reservation_holds h "
        "LEFT JOIN reservations r USING (order_id, sku) "
        "WHERE h.order_id = ANY(%s::uuid[]) AND r.order_id IS NULL",
        (list(ids), list(ids)),
    ).fetchall()


def held_when_finished(conn: Conn, ids: Sequence[str], statuses: Sequence[str]) -> list[Row]:
    """`{order_id, sku, status}`: reservations of the orders `ids` still HELD although the
    order is in one of `statuses` (finished: its stock committed or released)."""
    return conn.execute(
        "SELECT r.order_id, r.sku, o.status FROM reservations r JOIN orders o "
        "ON o.id = r.order_id WHERE r.order_id = ANY(%s::uuid[]) AND r.state = 'HELD' "
        "AND o.status = ANY(%s)",
        (list(ids), list(statuses)),
    ).fetchall()


def sold_by_sku(conn: Conn, ids: Sequence[str]) -> list[Row]:
    """`{sku, sold}`: units the orders `ids` took for good (COMMITTED reservations)."""
    return conn.execute(
        "SELECT sku, sum(qty) AS sold FROM reservations WHERE order_id = ANY(%s::uuid[]) "
        "AND state = 'COMMITTED' GROUP BY sku",
        (list(ids),),
    ).fetchall()


def charge_mismatches(
    conn: Conn, ids: Sequence[str], charged: Sequence[str], paid: Sequence[str]
) -> list[Row]:
    """`{order_id, status, order_status}` of the orders `ids` holding a charge (payment in
    `charged`) while not paid (order not in `paid`), or paid without a charge (`status` None:
    no payment row at all)."""
    return conn.execute(
        "SELECT o.id AS order_id, p.status, o.status AS order_status FROM orders o "
        "LEFT JOIN payments p ON p.order_id = o.id WHERE o.id = ANY(%s::uuid[]) AND "
        "((p.status = ANY(%s) AND o.status <> ALL(%s)) OR "
        "(o.status = ANY(%s) AND (p.status IS NULL OR p.status <> ALL(%s))))",
        (list(ids), list(charged), list(paid), list(paid), list(charged)),
    ).fetchall()


def duplicate_timeline(conn: Conn, ids: Sequence[str]) -> list[Row]:
    """`{order_id, status, event, n}`: timeline entries of the orders `ids` written twice."""
    return conn.execute(
        "SELECT order_id, status, event, count(*) AS n FROM order_events "
        "WHERE order_id = ANY(%s::uuid[]) GROUP BY 1, 2, 3 HAVING count(*) > 1",
        (list(ids),),
    ).fetchall()


def outbox_rows(conn: Conn) -> int:
    """Events still waiting in the outbox."""
    row = conn.execute("SELECT count(*) AS n FROM outbox").fetchone()
    return int(row["n"]) if row else 0


def where(url: str) -> str:
    """`host:port/path` of a connection URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path if parts.path not in ('', '/') else ''}"


def ping_redis(url: str, timeout_s: float = 2.0) -> None:
    """Raises unless Redis at `url` answers PING within `timeout_s`."""
    import redis  # here: its import costs every other CLI command ~0.2 s

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    finally:
        client.close()


@dataclass(frozen=True, slots=True)
class TableSize:
    """One table on disk: a plain table, or a partitioned one summed over its partitions."""

    name: str
    bytes: int  # pg_total_relation_size: heap, indexes and TOAST
    rows: int  # an estimate: the statistics' live rows, else the planner's reltuples
    partitions: int = 0  # leaf partitions; 0 for a plain table
    oldest_partition: str | None = None  # the leaf with the lowest range bound
    oldest_bound: str | None = None  # its bound, e.g. FOR VALUES FROM (...) TO (...)


# Per table: itself, or every member of its partition tree (a parent has no storage itself):
# name, bytes, rows, partitions. Also `make bench`'s count of the orders it ran on (benchdb).
TABLE_SIZES = """
WITH t AS (SELECT name, to_regclass(name) AS rel FROM unnest(%s::text[]) AS name),
members AS (
  SELECT t.name, coalesce(p.relid, t.rel) AS relid, coalesce(p.isleaf, true) AS leaf,
         coalesce(p.level, 0) AS level
  FROM t LEFT JOIN LATERAL pg_partition_tree(t.rel) p ON true
  WHERE t.rel IS NOT NULL
)
SELECT m.name, sum(pg_total_relation_size(m.relid))::bigint AS bytes,
       sum(CASE WHEN m.leaf THEN coalesce(nullif(s.n_live_tup, 0), greatest(c.reltuples, 0))
           ELSE 0 END)::bigint AS rows,
       count(*) FILTER (WHERE m.leaf AND m.level > 0) AS partitions
FROM members m JOIN pg_class c ON c.oid = m.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = m.relid
GROUP BY m.name
"""
# The leaf partition with the lowest range bound (bounds of one table print alike, so their
# text sorts like their values); the DEFAULT partition is no candidate.
_OLDEST = """
SELECT c.relname AS partition, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_partition_tree(to_regclass(%s)) p JOIN pg_class c ON c.oid = p.relid
WHERE p.isleaf AND p.level > 0 AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
ORDER BY 2 LIMIT 1
"""


def table_sizes(dsn: str, tables: Sequence[str], timeout_s: float = 5.0) -> list[TableSize]:
    """Size on disk and estimated rows of `tables`, in that order (a missing table is left
    out). Catalog and statistics reads only: cheap on tables of any size."""
    with psycopg.connect(dsn, row_factory=dict_row, connect_timeout=max(1, int(timeout_s))) as c:
        c.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        found = {r["name"]: r for r in c.execute(TABLE_SIZES, (list(tables),))}
        out = []
        for name in (t for t in tables if t in found):
            r = found[name]
            oldest = c.execute(_OLDEST, (name,)).fetchone() if r["partitions"] else None
            out.append(
                TableSize(
                    name,
                    int(r["bytes"]),
                    int(r["rows"]),
                    int(r["partitions"]),
                    oldest["partition"] if oldest else None,
                    oldest["bound"] if oldest else None,
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class GroupOffsets:
    """Where a consumer group stands on each partition of its topics: its committed offset
    (None: nothing committed there yet), and the partition's first and end offsets."""

    group: str
    committed: dict[tuple[str, int], int | None]
    begin: dict[tuple[str, int], int]
    end: dict[tuple[str, int], int]


async def group_offsets(
    bootstrap: str, groups: Mapping[str, Sequence[str]], timeout_s: float = 10.0
) -> list[GroupOffsets]:
    """Committed, first and end offsets of every partition of each group's topics
    (`groups`: group id → the topics it consumes)."""
    return await asyncio.wait_for(_group_offsets(bootstrap, groups), timeout_s)


async def _group_offsets(bootstrap: str, groups: Mapping[str, Sequence[str]]) -> list[GroupOffsets]:
    async with contextlib.AsyncExitStack() as stack:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="orders-status", **client_options()
        )
        stack.push_async_callback(admin.close)  # also after a failed start (its connections)
        await admin.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options()
        )
        stack.push_async_callback(consumer.stop)
        await consumer.start()
        topics = sorted({t for ts in groups.values() for t in ts})
        described = await admin.describe_topics(topics) if topics else []
        parts = {
            d["topic"]: [TopicPartition(d["topic"], p["partition"]) for p in d["partitions"]]
            for d in described
            if not d.get("error_code")
        }
        every = [tp for tps in parts.values() for tp in tps]
        begin = await consumer.beginning_offsets(every) if every else {}
        end = await consumer.end_offsets(every) if every else {}
        out = []
        for group, group_topics in groups.items():
            mine = [tp for t in group_topics for tp in parts.get(t, [])]
            got = await admin.list_consumer_group_offsets(group, partitions=mine) if mine else {}
            out.append(
                GroupOffsets(
                    group,
                    {_key(tp): _committed(got.get(tp)) for tp in mine},
                    {_key(tp): int(begin[tp]) for tp in mine},
                    {_key(tp): int(end[tp]) for tp in mine},
                )
            )
        return out


def _key(tp: TopicPartition) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def _committed(meta: Any) -> int | None:
    return None if meta is None or meta.offset < 0 else int(meta.offset)
