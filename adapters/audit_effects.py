"""What a run's finished orders must have left behind (`orders chaos`, cli/invariants.py): the
stock each fulfilled order took and nothing for the others, one charge of the order's total
for each paid order (captured once delivered), one message for its final status, an empty
outbox. Each query returns the rows that break the rule."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.audit import Conn, Row


def stock_not_matching_items(conn: Conn, ids: Sequence[str], fulfilled: Sequence[str]) -> list[Row]:
    """`{order_id, status, sku, ordered, committed}`: a fulfilled order (`fulfilled`) whose
    COMMITTED reservations differ from its items, sku by sku; any other order with a COMMITTED
    reservation (its stock was taken for good although it was not fulfilled)."""
    return conn.execute(
        "WITH o AS (SELECT id, status FROM orders WHERE id = ANY(%s::uuid[])), "
        "wanted AS (SELECT o.id, o.status, i->>'sku' AS sku, (i->>'qty')::int AS qty "
        "FROM o JOIN orders x ON x.id = o.id, jsonb_array_elements(x.items) i "
        "WHERE o.status = ANY(%s)), "
        "took AS (SELECT r.order_id AS id, r.sku, sum(r.qty)::int AS qty FROM reservations r "
        "WHERE r.order_id = ANY(%s::uuid[]) AND r.state = 'COMMITTED' GROUP BY 1, 2) "
        "SELECT coalesce(w.id, t.id) AS order_id, o.status, coalesce(w.sku, t.sku) AS sku, "
        "w.qty AS ordered, t.qty AS committed FROM wanted w "
        "FULL JOIN took t ON t.id = w.id AND t.sku = w.sku "
        "JOIN o ON o.id = coalesce(w.id, t.id) "
        "WHERE w.qty IS DISTINCT FROM t.qty",
        (list(ids), list(fulfilled), list(ids)),
    ).fetchall()


def wrong_charges(
    conn: Conn, ids: Sequence[str], paid: Sequence[str], charged: Sequence[str]
) -> list[Row]:
    """`{order_id, status, payment, amount, total}`: a paid order (`paid`) without a charge
    (no payment row, or one not in `charged`), or charged another amount than its total."""
    return conn.execute(
        "SELECT o.id AS order_id, o.status, p.status AS payment, p.amount, o.total "
        "FROM orders o LEFT JOIN payments p ON p.order_id = o.id "
        "WHERE o.id = ANY(%s::uuid[]) AND o.status = ANY(%s) AND (p.order_id IS NULL "
        "OR p.status <> ALL(%s) OR p.amount <> o.total)",
        (list(ids), list(paid), list(charged)),
    ).fetchall()


def uncaptured(conn: Conn, ids: Sequence[str]) -> list[Row]:
    """`{order_id, payment}`: a DELIVERED order whose charge was not captured."""
    return conn.execute(
        "SELECT o.id AS order_id, p.status AS payment FROM orders o "
        "LEFT JOIN payments p ON p.order_id = o.id WHERE o.id = ANY(%s::uuid[]) "
        "AND o.status = 'DELIVERED' AND p.status IS DISTINCT FROM 'CAPTURED'",
        (list(ids),),
    ).fetchall()


def unnotified(conn: Conn, ids: Sequence[str]) -> list[Row]:
    """`{order_id, status}`: an order with no message recorded for its (final) status."""
    return conn.execute(
        "SELECT o.id AS order_id, o.status FROM orders o WHERE o.id = ANY(%s::uuid[]) "
        "AND NOT EXISTS (SELECT 1 FROM notifications n "
        "WHERE n.order_id = o.id AND n.status = o.status)",
        (list(ids),),
    ).fetchall()
