"""Migration 0011: open holds get a table of their own, so closing a reservation is a HOT
update. Upgrading copies exactly the HELD reservations; the platform's close statement deletes
the hold and updates the reservation without touching an index, once; the downgrade restores
the partial indexes. Runs in a scratch schema of the stack's database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from adapters import stock
from tests.integration.scratch import alembic, connect, round_trip, scratch_schema

PREVIOUS = "0010"
EXPIRES = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
HELD_TWO, SHIPPED, RELEASED = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
ROWS = (
    (HELD_TWO, "SKU-1", "HELD", 2),
    (HELD_TWO, "SKU-2", "HELD", 1),
    (SHIPPED, "SKU-1", "COMMITTED", 3),
    (RELEASED, "SKU-1", "RELEASED", 4),
)
HOLDS = "SELECT order_id, sku, principal, qty, expires_at FROM reservation_holds"
INDEXES = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"


def _fill(url: str) -> None:
    with connect(url) as conn:
        for order_id, sku, state, qty in ROWS:
            conn.execute(
                "INSERT INTO reservations (order_id, sku, customer_id, principal, qty, state, "
                "expires_at) VALUES (%s, %s, 'c-1', 'alice', %s, %s, %s)",
                (order_id, sku, qty, state, EXPIRES),
            )


def _reservations(url: str) -> set[tuple[Any, ...]]:
    with connect(url) as conn:
        rows = conn.execute("SELECT order_id, sku, qty, state FROM reservations").fetchall()
    return {tuple(r.values()) for r in rows}


@pytest.fixture(scope="module")
def migrated() -> Iterator[str]:
    with scratch_schema("migholds") as url:
        alembic(url, "upgrade", PREVIOUS)
        _fill(url)
        alembic(url, "upgrade", "head")
        yield url


def test_upgrade_copies_exactly_the_held_reservations(migrated: str) -> None:
    with connect(migrated) as conn:
        holds = {tuple(r.values()) for r in conn.execute(HOLDS)}
        indexes = {r["indexname"] for r in conn.execute(INDEXES, ("reservations",))}
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'reservations'::regclass"
        ).fetchone()
    assert holds == {
        (HELD_TWO, "SKU-1", "alice", 2, EXPIRES),
        (HELD_TWO, "SKU-2", "alice", 1, EXPIRES),
    }
    assert indexes == {"reservations_pkey"}  # nothing that names the state
    assert options == {"reloptions": ["fillfactor=80"]}


def test_closing_a_hold_is_one_hot_update_and_happens_once(migrated: str) -> None:
    async def close() -> tuple[list[tuple[str, int]], list[tuple[str, int]], dict[str, Any]]:
        async with await AsyncConnection.connect(migrated, row_factory=dict_row) as conn:
            first = (await stock.close_holds(conn, [HELD_TWO], ["SKU-1"], "COMMITTED")).rows
            again = (await stock.close_holds(conn, [HELD_TWO], ["SKU-1"], "RELEASED")).rows
            cur = await conn.execute(  # this transaction's own counts, read before it commits
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                "WHERE relid = 'reservations'::regclass"
            )
            counts = await cur.fetchone()
            await conn.commit()
        assert counts is not None
        return first, again, counts

    first, again, counts = asyncio.run(close())
    assert first == [("SKU-1", 2)] and again == []
    assert counts == {"n_tup_upd": 1, "n_tup_hot_upd": 1}
    assert (HELD_TWO, "SKU-1", 2, "COMMITTED") in _reservations(migrated)
    with connect(migrated) as conn:
        left = {(r["order_id"], r["sku"]) for r in conn.execute(HOLDS)}
    assert left == {(HELD_TWO, "SKU-2")}


def test_a_held_reservation_without_its_hold_row_still_closes(migrated: str) -> None:
    """Code from before 0011, still running while the migration ran, inserts HELD
    reservations without hold rows: closing one must still return its stock, once."""
    orphan = uuid.uuid4()
    with connect(migrated) as conn:
        conn.execute(
            "INSERT INTO reservations (order_id, sku, customer_id, principal, qty, state, "
            "expires_at) VALUES (%s, 'SKU-9', 'c-1', 'alice', 5, 'HELD', %s)",
            (orphan, EXPIRES),
        )

    async def close() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        async with await AsyncConnection.connect(
            migrated, autocommit=True, row_factory=dict_row
        ) as conn:
            first = (await stock.close_holds(conn, [orphan], ["SKU-9"], "RELEASED")).rows
            again = (await stock.close_holds(conn, [orphan], ["SKU-9"], "RELEASED")).rows
        return first, again

    assert asyncio.run(close()) == ([("SKU-9", 5)], [])
    assert (orphan, "SKU-9", 5, "RELEASED") in _reservations(migrated)


def test_the_expiry_sweep_and_the_hold_cap_read_the_open_holds(migrated: str) -> None:
    async def read() -> tuple[dict[uuid.UUID, str], dict[str, int], dict[str, int]]:
        async with await AsyncConnection.connect(migrated, row_factory=dict_row) as conn:
            await conn.execute(
                "INSERT INTO orders (id, principal, customer_id, status, items, total, currency, "
                "payment_method, created_at, updated_at) "
                "VALUES (%s, 'alice', 'c-1', 'RESERVED', '[]', 1, 'EUR', 'card', %s, %s)",
                (HELD_TWO, EXPIRES, EXPIRES),
            )
            after, before = EXPIRES + timedelta(seconds=1), EXPIRES - timedelta(seconds=1)
            expired = await stock.expired_holds(conn, after, ["SKU-2"], after)
            early = await stock.expired_holds(conn, before, ["SKU-2"], after)
            # its hold expired, but the order was reserved (again) since: not yet
            moved_since = await stock.expired_holds(conn, after, ["SKU-2"], before)
            caps = await stock.open_holds(conn, ["alice", "bob"])
            # an order being decided again (another shard committed its part before this
            # decision failed) is not counted against its own principal's cap
            deciding = await stock.open_holds(conn, ["alice", "bob"], [HELD_TWO])
            await conn.rollback()
        assert early == {} and moved_since == {}
        return expired, caps, deciding

    expired, caps, deciding = asyncio.run(read())
    assert expired == {HELD_TWO: "RESERVED"}
    assert caps == {"alice": 1}
    assert deciding == {}


def test_downgrade_restores_the_partial_indexes_and_keeps_every_reservation() -> None:
    with round_trip("migholdsdown", PREVIOUS, _fill, _reservations) as (url, before):
        assert _reservations(url) == before
        with connect(url) as conn:
            indexes = {r["indexname"] for r in conn.execute(INDEXES, ("reservations",))}
            holds = conn.execute("SELECT to_regclass('reservation_holds') AS t").fetchone()
        assert indexes == {"reservations_pkey", "reservations_held", "reservations_held_principal"}
        assert holds == {"t": None}
        alembic(url, "upgrade", "head")
        with connect(url) as conn:
            assert len(conn.execute(HOLDS).fetchall()) == 2
