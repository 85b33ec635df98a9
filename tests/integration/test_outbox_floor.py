"""The relay's scan floor against a real Postgres (migration 0012, actors/outbox_floor.py): a
row of a transaction still open below the highest id taken is found once it commits; a held
read-only snapshot does not stop the floor from rising, and the take scans from it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.rows import dict_row

from actors.outbox_floor import ScanFloor
from adapters import outbox as sql
from tests.integration.conftest import wait_until
from tests.integration.scratch import alembic, connect, scratch_schema

_INSERT = "INSERT INTO outbox (topic, key, payload) VALUES ('order.created', %s, '\\x7b7d') "
LIMIT = 100


async def _take(url: str, floor: ScanFloor) -> list[str]:
    """One relay take from the floor, committed; the keys it took."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        taken = await sql.take(conn, LIMIT, floor.floor)
        await conn.commit()
    floor.committed(taken, LIMIT)
    return [key for _, key, _ in taken.rows]


def _insert(conn: psycopg.Connection[Any], key: str) -> int:
    row = conn.execute(_INSERT + "RETURNING id", (key,)).fetchone()
    assert row is not None
    return int(row["id"])


def test_a_late_commit_below_the_highest_id_taken_is_still_taken() -> None:
    """The late writer got its xid after the early one and its outbox id before it. Unless
    another session's transaction ends in between, its xid is above the latest completed one
    when the first take looks: not in that snapshot's list of running transactions, the case
    the first version (the snapshot's `xmax` as the bound) got wrong."""
    with scratch_schema("floor") as url:
        alembic(url, "upgrade", "head")
        floor = ScanFloor()
        with (
            psycopg.connect(url, row_factory=dict_row) as late,
            psycopg.connect(url, row_factory=dict_row) as early,
            connect(url) as conn,
        ):
            early.execute("SELECT pg_current_xact_id()")  # the lower xid
            late_id = _insert(late, "late")  # the lower outbox id, committed last
            assert _insert(early, "early") > late_id
            early.commit()
            assert asyncio.run(_take(url, floor)) == ["early"]
            for i in range(5):  # more takes while the late writer is open
                _insert(conn, f"more-{i}")
                assert asyncio.run(_take(url, floor)) == [f"more-{i}"]
                assert floor.floor < late_id  # its writer is running: never past its row
            late.commit()
        assert asyncio.run(_take(url, floor)) == ["late"]
        with connect(url) as conn:
            _insert(conn, "last")
        assert asyncio.run(_take(url, floor)) == ["last"]
        asyncio.run(_take(url, floor))
        assert floor.floor > late_id


def _rows_visited(conn: psycopg.Connection[Any], floor: int) -> int:
    """Heap rows the take's scan checks from `floor` (an index-only scan in id order, the plan
    it has on a big table; a small one could be read whole instead)."""
    conn.execute("SET enable_seqscan = off")
    plan = conn.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM outbox WHERE id > %s ORDER BY id LIMIT 100",
        (floor,),
    ).fetchone()
    assert plan is not None
    node = next(iter(plan.values()))[0]["Plan"]
    while "Heap Fetches" not in node:
        node = node["Plans"][0]
    return int(node["Heap Fetches"])


def test_under_a_held_snapshot_the_floor_rises_and_the_take_skips_the_dead_rows() -> None:
    with scratch_schema("floor") as url:
        alembic(url, "upgrade", "head")
        floor = ScanFloor()
        with psycopg.connect(url, row_factory=dict_row) as report, connect(url) as conn:
            report.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            report.execute("SELECT count(*) FROM outbox").fetchone()  # a snapshot, held
            for i in range(40):
                conn.execute(
                    "INSERT INTO outbox (topic, key, payload) SELECT 'order.created', %s, "
                    "'\\x7b7d' FROM generate_series(1, 50)",
                    (f"k{i}",),
                )
                assert len(asyncio.run(_take(url, floor))) == 50
            assert floor.floor > 1900  # rose while the snapshot was held (no xid: not a writer)
            # 2,000 deleted rows the held snapshot may see: a scan from 0 walks them all
            assert _rows_visited(conn, floor.floor) < 200 < 1900 < _rows_visited(conn, 0)
            report.rollback()


def test_the_outbox_id_is_drawn_after_the_xid_and_continues_the_identity() -> None:
    with scratch_schema("floorids") as url:
        alembic(url, "upgrade", "0011")
        with connect(url) as conn:
            before = max(_insert(conn, f"k{i}") for i in range(3))
            conn.execute("DELETE FROM outbox")
        alembic(url, "upgrade", "head")
        with connect(url) as conn:
            default = conn.execute(
                "SELECT pg_get_expr(d.adbin, d.adrelid) AS e FROM pg_attrdef d "
                "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
                "WHERE d.adrelid = 'outbox'::regclass AND a.attname = 'id'"
            ).fetchone()
            assert default is not None and "pg_current_xact_id()" in default["e"]
            assert _insert(conn, "after") > before
        alembic(url, "downgrade", "0011")
        with connect(url) as conn:
            assert _insert(conn, "down") > before + 1


def test_migrating_under_a_writer_hands_out_no_id_twice() -> None:
    """A writer already in a transaction on the outbox keeps inserting while migration 0012
    waits for its lock; its ids come from the identity after the migration read where the new
    sequence starts. Without the migration's lock up front the sequence began at an id that
    writer then took: the next insert failed with a duplicate key."""
    with scratch_schema("floorlock") as url:
        alembic(url, "upgrade", "0011")
        writer = connect(url)
        writer.autocommit = False
        first = _insert(writer, "k1")  # open: holds its lock on the outbox
        pool = ThreadPoolExecutor(1)
        migration = pool.submit(alembic, url, "upgrade", "head")
        with connect(url) as watch:
            waiting = (
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE '%outbox%'"
            )
            wait_until(
                lambda: (watch.execute(waiting).fetchone() or {}).get("n"),
                timeout=60,
                what="the migration waiting for the writer",
            )
        second = _insert(writer, "k2")
        writer.commit()
        writer.close()
        migration.result(timeout=120)  # raises if the migration failed
        pool.shutdown()
        with connect(url) as conn:
            third = _insert(conn, "k3")  # raised UniqueViolation before
        assert first < second < third
