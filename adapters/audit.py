"""What an operator reads from Postgres to judge the platform: the invariants of a run's orders
(`orders chaos`) and the size of each table (`orders status`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

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
    reserved count that differs from the sum of the open (HELD) reservations."""
    return conn.execute(
        "SELECT i.sku, i.on_hand, i.reserved, coalesce(h.q, 0) AS held FROM inventory i "
        "LEFT JOIN (SELECT sku, sum(qty) AS q FROM reservations WHERE state = 'HELD' "
        "GROUP BY sku) h ON h.sku = i.sku "
        "WHERE i.on_hand < 0 OR i.reserved > i.on_hand OR i.reserved <> coalesce(h.q, 0)"
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
    `charged`) while not paid (order not in `paid`), or paid without a charge."""
    return conn.execute(
        "SELECT p.order_id, p.status, o.status AS order_status FROM payments p "
        "JOIN orders o ON o.id = p.order_id WHERE p.order_id = ANY(%s::uuid[]) AND "
        "((p.status = ANY(%s) AND o.status <> ALL(%s)) OR "
        "(o.status = ANY(%s) AND p.status <> ALL(%s)))",
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
