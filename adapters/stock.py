"""SQL of inventory: stock rows, reservations and their open holds, and the reads the inventory
group needs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from psycopg import AsyncConnection

from adapters.pg import Row, Write, inserting, updating, uuid_array
from domain.inventory import HELD, Stock

Conn = AsyncConnection[Row]


async def load_stock(conn: Conn) -> dict[str, Stock]:
    cur = await conn.execute("SELECT sku, on_hand, reserved FROM inventory")
    return {r["sku"]: Stock(r["on_hand"], r["reserved"]) for r in await cur.fetchall()}


async def reservation_states(
    conn: Conn, order_ids: Sequence[uuid.UUID], skus: Sequence[str]
) -> dict[uuid.UUID, set[str]]:
    """The states of the reservations these orders already have on these SKUs."""
    cur = await conn.execute(
        "SELECT order_id, state FROM reservations WHERE order_id = ANY(%s::uuid[]) "
        "AND sku = ANY(%s)",
        (uuid_array(order_ids), list(skus)),
    )
    states: dict[uuid.UUID, set[str]] = {}
    for row in await cur.fetchall():
        states.setdefault(row["order_id"], set()).add(row["state"])
    return states


def holding(
    rows: Sequence[tuple[uuid.UUID, str, str, str, int]],
    expires: datetime,
    delta: Mapping[str, int],
) -> tuple[Write | None, Write | None, Write | None]:
    """Insert HELD reservations `(order, sku, customer, principal, qty)` and their open holds;
    move `delta` units of each SKU into `reserved` (writes for `Tx.write`)."""
    reservations = inserting(
        "INSERT INTO reservations (order_id, sku, customer_id, principal, qty, state, expires_at)",
        ("uuid", "text", "text", "text", "int", "text", "timestamptz"),
        [(*r, HELD, expires) for r in rows],
    )
    holds = inserting(
        "INSERT INTO reservation_holds (order_id, sku, principal, qty, expires_at)",
        ("uuid", "text", "text", "int", "timestamptz"),
        [(order, sku, principal, qty, expires) for order, sku, _, principal, qty in rows],
    )
    return reservations, holds, shifting({sku: (qty, 0) for sku, qty in delta.items()})


def shifting(delta: Mapping[str, tuple[int, int]]) -> Write | None:
    """Add `(to reserved, to on-hand)` to each SKU's row, one statement for all SKUs."""
    return updating(
        "UPDATE inventory i SET reserved = i.reserved + v.reserved, "
        "on_hand = i.on_hand + v.on_hand, updated_at = now()",
        ("text", "int", "int"),
        "sku, reserved, on_hand",
        "i.sku = v.sku",
        [(sku, r, o) for sku, (r, o) in delta.items()],
    )


class Closed(NamedTuple):
    """What `close_holds` did: `(sku, qty)` of each hold closed, and the orders asked for that
    do not exist (when it was asked to look)."""

    rows: list[tuple[str, int]]
    unknown: set[uuid.UUID]


async def close_holds(
    conn: Conn,
    order_ids: Sequence[uuid.UUID],
    skus: Sequence[str],
    target: str,
    find_unknown: bool = False,
) -> Closed:
    """HELD → `target` for these orders' reservations on these SKUs, and their open holds
    deleted, in one statement; returns `(sku, qty)` of each one closed. The reservation's state
    decides (a hold closes once: a second call finds nothing HELD). Code from before migration
    0011, still running while the migration ran, wrote reservations without hold rows (such a
    reservation closes and returns its stock like any other) and closed reservations without
    deleting theirs: every hold row of these orders on these SKUs goes, since none of them is
    HELD afterwards (a left-over row counted against the hold cap, and the stranded-hold sweep
    found it again every run). Looked up by primary key: no index names the state, so the
    update can be HOT. With `find_unknown` the same statement also returns the orders that do
    not exist (a primary-key probe of `orders` per order; without it the branch is not run)."""
    ids, names = uuid_array(order_ids), list(skus)
    cur = await conn.execute(
        "WITH closed AS (UPDATE reservations SET state = %s, updated_at = now() "
        "WHERE order_id = ANY(%s::uuid[]) AND sku = ANY(%s) AND state = %s "
        "RETURNING order_id, sku, qty), "
        "gone AS (DELETE FROM reservation_holds WHERE order_id = ANY(%s::uuid[]) "
        "AND sku = ANY(%s)) "
        "SELECT sku, qty, NULL::uuid AS unknown FROM closed "
        "UNION ALL SELECT NULL, NULL, u.id FROM unnest(%s::uuid[]) AS u(id) "
        "WHERE %s AND NOT EXISTS (SELECT FROM orders o WHERE o.id = u.id)",
        (target, ids, names, HELD, ids, names, ids, find_unknown),
    )
    rows = await cur.fetchall()
    return Closed(
        [(r["sku"], r["qty"]) for r in rows if r["unknown"] is None],
        {r["unknown"] for r in rows if r["unknown"] is not None},
    )


async def set_on_hand(conn: Conn, sku: str, on_hand: int) -> None:
    await conn.execute(
        "UPDATE inventory SET on_hand = %s, updated_at = now() WHERE sku = %s", (on_hand, sku)
    )


async def expired_holds(
    conn: Conn,
    as_of: datetime,
    skus: Sequence[str],
    unchanged_since: datetime,
    limit: int = 500,
) -> dict[uuid.UUID, str]:
    """Orders still unpaid whose hold on one of these SKUs expired before `as_of`, and whose
    status has not changed since `unchanged_since` (`as_of` - HOLD_TTL_S), with the status
    seen (the cancel, under the order's lock, requires it unchanged). A hold a shard made
    for an attempt that failed elsewhere keeps its expiry when the retry reserves the order
    (the shard answers from the hold it has), so a RESERVED order was cancelled as expired
    moments after its reservation; its payment window now counts from that."""
    cur = await conn.execute(
        "SELECT DISTINCT h.order_id, o.status FROM reservation_holds h "
        "JOIN orders o ON o.id = h.order_id WHERE h.expires_at < %s AND h.sku = ANY(%s) "
        "AND o.status IN ('PENDING', 'RESERVED') AND o.updated_at < %s LIMIT %s",
        (as_of, list(skus), unchanged_since, limit),
    )
    return {r["order_id"]: r["status"] for r in await cur.fetchall()}


async def stranded_holds(
    conn: Conn,
    settled_before: datetime,
    skus: Sequence[str],
    statuses: Sequence[str],
    limit: int = 500,
) -> dict[uuid.UUID, str]:
    """Orders in `statuses` (ones whose holds should be closed), settled before
    `settled_before`, that still hold one of these SKUs, with their status."""
    cur = await conn.execute(
        "SELECT DISTINCT h.order_id, o.status FROM reservation_holds h "
        "JOIN orders o ON o.id = h.order_id "
        "WHERE h.sku = ANY(%s) AND o.status = ANY(%s) AND o.updated_at < %s LIMIT %s",
        (list(skus), list(statuses), settled_before, limit),
    )
    return {r["order_id"]: r["status"] for r in await cur.fetchall()}


async def open_holds(
    conn: Conn, principals: Sequence[str], deciding: Sequence[uuid.UUID] = ()
) -> dict[str, int]:
    """Unshipped reservations per principal (orders with at least one open hold), not counting
    the orders being decided (`deciding`): with several shards another shard may have committed
    its part of one of them before this decision's transaction failed, and a retry would count
    the order against its own cap."""
    cur = await conn.execute(
        "SELECT principal, count(DISTINCT order_id) AS n FROM reservation_holds "
        "WHERE principal = ANY(%s) AND order_id <> ALL(%s::uuid[]) GROUP BY principal",
        (sorted(set(principals)), list(deciding)),
    )
    return {r["principal"]: int(r["n"]) for r in await cur.fetchall()}
