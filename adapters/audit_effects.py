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


def shipments_out_of_step(conn: Conn, ids: Sequence[str]) -> list[Row]:
    """`{order_id, status, shipment}`: a delivered order whose shipment is not DELIVERED, or an
    order never paid (REJECTED, DECLINED) that has a shipment."""
    return conn.execute(
        "SELECT o.id AS order_id, o.status, s.status AS shipment FROM orders o "
        "LEFT JOIN shipments s ON s.order_id = o.id WHERE o.id = ANY(%s::uuid[]) AND "
        "((o.status = 'DELIVERED' AND s.status IS DISTINCT FROM 'DELIVERED') OR "
        "(o.status IN ('REJECTED', 'DECLINED') AND s.order_id IS NOT NULL))",
        (list(ids),),
    ).fetchall()


def orders_of(conn: Conn, principals: Sequence[str], since_epoch_s: float) -> list[str]:
    """The ids of the orders `principals` placed since `since_epoch_s` (all of a run's orders,
    whether or not its client learned their ids)."""
    rows = conn.execute(
        "SELECT id FROM orders WHERE principal = ANY(%s) AND created_at >= to_timestamp(%s)",
        (list(principals), since_epoch_s),
    ).fetchall()
    return [str(r["id"]) for r in rows]


def on_hand(conn: Conn, skus: Sequence[str]) -> dict[str, int]:
    """`sku → on_hand` of `skus`."""
    rows = conn.execute(
        "SELECT sku, on_hand FROM inventory WHERE sku = ANY(%s)", (list(skus),)
    ).fetchall()
    return {r["sku"]: int(r["on_hand"]) for r in rows}


def delivered_units(conn: Conn, ids: Sequence[str]) -> dict[str, int]:
    """`sku → units` the DELIVERED orders among `ids` asked for, from the orders' own items
    (not from the reservations the stock bookkeeping keeps)."""
    rows = conn.execute(
        "SELECT i->>'sku' AS sku, sum((i->>'qty')::int)::int AS units FROM orders o, "
        "jsonb_array_elements(o.items) i WHERE o.id = ANY(%s::uuid[]) "
        "AND o.status = 'DELIVERED' GROUP BY 1",
        (list(ids),),
    ).fetchall()
    return {r["sku"]: int(r["units"]) for r in rows}
