"""Shard ownership (ADR-010): one Postgres advisory lock per shard, held by a session of its own
for as long as the shard lives, so there is never a second owner of the same SKUs or ledgers."""

from __future__ import annotations

import asyncio
import logging
import os

import psycopg
from psycopg import AsyncConnection

from adapters.pg import Row, connect_when_up

log = logging.getLogger(__name__)

# On the owner's session, the server's TCP keepalives (Postgres's own GUCs, per session): a
# shard whose host died without closing its connection (power lost, network cut) would hold
# its lock until the OS default of ~2 h notices; with these its backend ends, and the lock
# with it, about 25 s after the last packet (10 s idle + 3 probes 5 s apart).
_OWNER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
)
_CLAIM_LOG_S = 10.0


async def claim_ownership(
    dsn: str, key: str, timeout_s: float | None = None
) -> AsyncConnection[Row]:
    """Hold a Postgres advisory lock named `key` for as long as the returned connection lives.

    A shard actor calls this before loading its state, so there is never a second owner of the
    same SKUs or ledgers, not even from a second Ray cluster pointed at the same database
    (ADR-010). A killed owner's connection closes and frees the lock for its restarted self; a
    vanished owner's expires with its session's keepalives (`_OWNER_KEEPALIVES`).

    Waits for as long as it takes (or `timeout_s`, then `RuntimeError`), saying every ~10 s
    which lock it waits for: Ray never restarts an actor whose `__init__` raised, so a shard
    that gave up would stay dead after the old owner's lock went. A Postgres restart meanwhile
    is waited out too (`connect_when_up`)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    logged = start
    while True:
        conn = await connect_when_up(dsn, f"owner:{key}")
        try:
            await conn.execute(_OWNER_KEEPALIVES)
            while True:
                cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (key,))
                row = await cur.fetchone()
                if row and row["ok"]:
                    return conn
                waited = loop.time() - start
                if timeout_s is not None and waited > timeout_s:
                    raise RuntimeError(
                        f"{key} is owned by another process (advisory lock held): is a second "
                        "deployment using the same DATABASE_URL? Stop it, or wait for it to exit."
                    )
                if loop.time() - logged >= _CLAIM_LOG_S:
                    logged = loop.time()
                    log.warning(
                        "%s: waiting %.0f s for its advisory lock, held by another session "
                        "(an old owner not gone yet, or a second deployment on this database)",
                        key,
                        waited,
                    )
                await asyncio.sleep(0.5)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            log.warning("%s: connection lost while claiming its lock (%s); reconnecting", key, exc)
            await conn.close()
        except BaseException:
            await conn.close()
            raise


async def watch_ownership(conn: AsyncConnection[Row], key: str, every_s: float = 2.0) -> None:
    """End this process when the connection holding `key`'s advisory lock is gone.

    A Postgres restart (or a terminated backend) takes the lock with it; a shard that went on
    without it could run next to a second owner. So the process exits, Ray restarts the actor
    (`max_restarts=-1`) and its `__init__` claims the lock again before reloading its state.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            await conn.execute("SELECT 1")
        except psycopg.Error as exc:
            log.error("%s lost its advisory lock (%s); restarting to claim it again", key, exc)
            logging.shutdown()
            os._exit(1)
