"""The pools' checkout check (`adapters.pg.check_if_suspect`): no round trip for a healthy
connection, and a connection whose Postgres session ended is replaced, never handed out."""

from __future__ import annotations

import asyncio
import select
import time

import psycopg

from adapters.pg import open_pool
from core.settings import Settings


async def _last_query(admin: psycopg.AsyncConnection[tuple[object, ...]], pid: int) -> str:
    cur = await admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
    row = await cur.fetchone()
    assert row is not None, f"backend {pid} is gone"
    return str(row[0])


async def test_a_healthy_connection_is_handed_out_without_asking_the_server(
    settings: Settings,
) -> None:
    # autocommit: no COMMIT on the way back to the pool, so the marker stays the last statement
    pool = await open_pool(settings.database_url, 1, "test-check", autocommit=True)
    admin = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT pg_backend_pid(), 'marker-check'")
            pid = (await cur.fetchone())["pg_backend_pid"]  # type: ignore[index]
        async with pool.connection() as conn:  # the same connection, checked on its way out
            # Postgres shows a backend's last statement: an unconditional check would have run
            # an empty query on it by now.
            assert "marker-check" in await _last_query(admin, pid)
            cur = await conn.execute("SELECT pg_backend_pid()")
            assert (await cur.fetchone())["pg_backend_pid"] == pid  # type: ignore[index]
    finally:
        await admin.close()
        await pool.close()


async def test_a_connection_whose_session_ended_is_replaced(settings: Settings) -> None:
    pool = await open_pool(settings.database_url, 1, "test-check")
    admin = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            pid = (await cur.fetchone())["pg_backend_pid"]  # type: ignore[index]
            fd = conn.fileno()
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while not select.select([fd], [], [], 0)[0]:  # the server's goodbye has arrived
            assert time.monotonic() < deadline, "the terminated session never said goodbye"
            await asyncio.sleep(0.02)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            assert (await cur.fetchone())["pg_backend_pid"] != pid  # type: ignore[index]
    finally:
        await admin.close()
        await pool.close()
