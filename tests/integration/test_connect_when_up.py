"""`adapters.pg.connect_when_up`: a shard restarting while Postgres is down waits for it.

Ray never restarts an actor whose `__init__` raised, so a shard that restarted during a
Postgres outage used to stay dead ("connection refused" in its creation task). Postgres "comes
back" here as a TCP forwarder to the real server that starts listening a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from adapters.ownership import claim_ownership
from adapters.pg import connect_when_up
from core.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _via(dsn: str, port: int) -> str:
    """The same DSN with its host and port replaced by 127.0.0.1:`port`."""
    parts = urlsplit(dsn)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _forward_after(delay_s: float, port: int, target: tuple[str, int]) -> asyncio.Server:
    await asyncio.sleep(delay_s)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(serve, "127.0.0.1", port)


async def test_a_shard_waits_for_postgres_instead_of_dying(settings: Settings) -> None:
    real = urlsplit(settings.database_url)
    port = _free_port()
    started = time.monotonic()
    server_task = asyncio.create_task(
        _forward_after(1.5, port, (real.hostname or "127.0.0.1", real.port or 5432))
    )
    conn = await asyncio.wait_for(
        claim_ownership(_via(settings.database_url, port), "test-connect-when-up"), 30
    )
    connected = time.monotonic()
    server = await server_task
    try:
        assert connected - started >= 1.5  # it connected only once something listened
        # the lock is held by that session: another one cannot take it
        async with await psycopg.AsyncConnection.connect(settings.database_url) as other:
            cur = await other.execute(
                "SELECT pg_try_advisory_lock(hashtext('test-connect-when-up'))"
            )
            assert await cur.fetchone() == (False,)
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


async def test_it_gives_up_when_told_and_says_why(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = _via(settings.database_url, _free_port())  # nothing ever listens there
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        await connect_when_up(dsn, "test-nobody", give_up_after_s=1.0)
    assert time.monotonic() - started >= 1.0
    assert any("test-nobody: Postgres not reachable" in r.getMessage() for r in caplog.records)
