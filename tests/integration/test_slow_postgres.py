"""A request never waits on Postgres without end: a statement of the gateway's runs at most
10 s (`statement_timeout` of its pools, serve_app/wiring.py), then the client gets the JSON 503
and nothing is stored. Before, an order posted while a migration held `orders` waited as long as
the lock did, and behind it every request of the replica's 64 slots."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg

from core.settings import Settings
from tests.integration.conftest import Api


def test_an_order_posted_while_orders_is_locked_gets_a_503_and_is_not_stored(
    api: Api, customer: str, settings: Settings, pg: Any
) -> None:
    key = f"slow-pg-{uuid.uuid4()}"
    headers = {**api.headers(customer), "Idempotency-Key": key}
    body = {"customerId": customer, "items": [{"sku": "SKU-3", "qty": 1}]}
    with psycopg.connect(settings.database_url) as locker:
        locker.execute("LOCK TABLE orders IN SHARE MODE")  # inserts wait; reads go on
        started = time.monotonic()
        resp = api.http.post("/api/orders", json=body, headers=headers, timeout=60)
        waited = time.monotonic() - started
        locker.rollback()
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "unavailable"
    assert resp.headers["Retry-After"] == "2"
    assert waited < 30, f"answered after {waited:.1f} s"
    stored = pg.execute(
        "SELECT count(*) AS n FROM orders WHERE principal = %s AND idempotency_key = %s",
        (customer, key),
    ).fetchone()
    assert stored == {"n": 0}
    again = api.http.post("/api/orders", json=body, headers=headers)  # the same key, once free
    assert again.status_code == 202, again.text


def test_the_gateways_connections_bound_a_server_that_stops_answering(settings: Settings) -> None:
    """`statement_timeout` is the server's to enforce: a server cut off by the network (a
    host gone, a partition: compose and Kubernetes have no HAProxy in front to give up) would
    hold a request until the OS's TCP timeouts, minutes. The gateway's connections carry
    libpq's own bounds (adapters/pg.py, CLIENT_TIMEOUTS) and the statement limit."""
    import asyncio

    from adapters.pg import CLIENT_TIMEOUTS
    from serve_app.wiring import _gateway_pool

    async def seen() -> tuple[str, str]:
        pool = await _gateway_pool(settings, "gateway-test", 1)
        try:
            async with pool.connection() as conn:
                cur = await conn.execute("SHOW statement_timeout")
                row = await cur.fetchone()
                assert row is not None
                return conn.info.dsn, str(row["statement_timeout"])
        finally:
            await pool.close()

    dsn, statement_timeout = asyncio.run(seen())
    for key, value in CLIENT_TIMEOUTS.items():
        assert f"{key}={value}" in dsn, (key, dsn)
    assert statement_timeout == "10s"


def test_the_pipelines_connections_bound_a_server_that_stops_answering(
    settings: Settings,
) -> None:
    """The stages' and the relay's pools, a shard's owner session and the relay's LISTEN had no
    client-side bounds: a Postgres host gone without closing them (a node lost, a network cut)
    held every stage's statement for the OS's ~15 minutes of retransmissions, and the owner's
    watch never saw the lock go."""
    import asyncio

    from actors.base import open_uow
    from adapters.pg import CLIENT_TIMEOUTS, connect_when_up

    async def dsns() -> list[str]:
        uow = await open_uow(settings, 1, "pipeline-test")
        owner = await connect_when_up(settings.database_url, "owner-test")
        try:
            async with uow.pool.connection() as conn:
                return [conn.info.dsn, owner.info.dsn]
        finally:
            await owner.close()
            await uow.pool.close()

    for dsn in asyncio.run(dsns()):
        for key, value in CLIENT_TIMEOUTS.items():
            assert f"{key}={value}" in dsn, (key, dsn)
