"""A shard's claim of its ownership lock (`adapters.ownership.claim_ownership`): it waits for an old
owner instead of giving up (Ray never restarts an actor whose `__init__` raised), and its
session carries keepalives, so the lock of an owner whose host vanished expires (and every
other session's locks, with the server's keepalives)."""

from __future__ import annotations

import asyncio

import psycopg

from adapters.ownership import claim_ownership
from core.settings import Settings


def test_the_owner_session_has_short_keepalives(settings: Settings) -> None:
    async def check() -> dict[str, str]:
        conn = await claim_ownership(settings.database_url, "test-ownership-keepalives")
        try:
            out = {}
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"):
                cur = await conn.execute(f"SHOW {name}")
                row = await cur.fetchone()
                assert row is not None
                out[name] = str(row[name])
            return out
        finally:
            await conn.close()

    got = asyncio.run(check())
    assert got == {
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }


def test_every_session_has_the_servers_short_keepalives(settings: Settings) -> None:
    """A stage's or the relay's session, not an owner's: one whose machine vanished in the
    middle of a transaction held its row locks for the OS's ~2 h, and the stage restarted on
    another machine waited on them (the server's defaults, cluster/services.sh)."""
    names = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
    with psycopg.connect(settings.database_url) as conn:  # TCP, as from another machine
        got = [conn.execute(f"SHOW {name}").fetchone() for name in names]
    assert got == [("10",), ("5",), ("3",)]


def test_a_claim_waits_for_the_old_owner_to_go(settings: Settings) -> None:
    """The second claimant has no deadline: it takes the lock once the first lets it go."""

    async def scenario() -> float:
        key = "test-ownership-wait"
        first = await claim_ownership(settings.database_url, key)
        second = asyncio.create_task(claim_ownership(settings.database_url, key))
        await asyncio.sleep(1.5)  # the second is waiting on the first
        assert not second.done()
        loop = asyncio.get_running_loop()
        released = loop.time()
        await first.close()
        conn = await asyncio.wait_for(second, 10)
        took = loop.time() - released
        await conn.close()
        return took

    assert asyncio.run(scenario()) < 5
