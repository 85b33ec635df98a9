"""Postgres access: an async psycopg 3 pool per process and small helpers used by every owner."""

from __future__ import annotations

import asyncio
import logging
import select
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Row = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)


async def check_if_suspect(conn: AsyncConnection[Any]) -> None:
    """The pool's check on checkout, with a round trip only when the connection looks wrong.

    An idle healthy connection has nothing to read. When Postgres ends a session (restart,
    `pg_terminate_backend`, crash) it sends an error or closes the socket, which then reads as
    ready: only then is the server asked (`SELECT ''`), and a failure makes the pool drop the
    connection and hand out another. The unconditional check cost every transaction one more
    round trip, i.e. one more wake-up of a backend and of the caller on a busy box (ADR-008)."""
    if conn.broken or conn.closed:
        raise psycopg.OperationalError("connection is closed")
    poller = select.poll()  # not select(): a Ray worker may hold descriptors above 1024
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


# libpq's own timeouts for a server that no longer answers (a network cut, a host gone), which
# `statement_timeout` cannot bound, the server being the one that enforces it: a connection
# is dropped once 15 s of sent data went unacknowledged, or 3 keepalive probes 5 s apart after
# 10 s of silence went unanswered, and its statement fails (OperationalError: the API's 503).
CLIENT_TIMEOUTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


def bounded(dsn: str) -> str:
    """`dsn` with libpq's bounds (`CLIENT_TIMEOUTS`), for a connection made outside a pool."""
    return make_conninfo(dsn, **CLIENT_TIMEOUTS)


async def open_pool(
    dsn: str,
    size: int,
    name: str,
    *,
    autocommit: bool = False,
    wait_for_postgres: bool = False,
    session: Mapping[str, str] | None = None,
    checkout_s: float = 30.0,
) -> AsyncConnectionPool[AsyncConnection[Row]]:
    """Open a pool and wait until its first connection works (fails within 30 s on a bad DSN).
    `wait_for_postgres`: first wait for Postgres for as long as it takes (`connect_when_up`),
    what an actor's `__init__` needs (Ray never restarts an actor whose creation task raised).
    `session`: settings every connection starts with (`-c name=value`). `checkout_s`: how long
    a caller waits for a connection before `PoolTimeout`. Every connection carries libpq's
    bounds (`CLIENT_TIMEOUTS`): the client gives up on a server that stopped answering."""
    if wait_for_postgres:
        return await when_up(
            lambda: open_pool(
                dsn,
                size,
                name,
                autocommit=autocommit,
                session=session,
                checkout_s=checkout_s,
            ),
            name,
        )
    kwargs: dict[str, Any] = {"row_factory": dict_row, "autocommit": autocommit, **CLIENT_TIMEOUTS}
    if session:
        kwargs["options"] = session_options(dsn, session)
    pool: AsyncConnectionPool[AsyncConnection[Row]] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=size,
        name=name,
        open=False,
        kwargs=kwargs,
        connection_class=AsyncConnection[Row],
        check=check_if_suspect,
        timeout=checkout_s,
    )
    try:
        await pool.open(wait=True, timeout=30)
    except BaseException:
        await pool.close()  # its workers would go on connecting for nobody
        raise
    return pool


def session_options(dsn: str, session: Mapping[str, str]) -> str:
    """libpq's `options` that start a session with `session`'s settings, after the DSN's own
    `options` (which a connection's `options` argument would otherwise replace)."""
    given = conninfo_to_dict(dsn).get("options")
    settings = [f"-c {k}={v}" for k, v in sorted(session.items())]
    return " ".join([str(given), *settings] if given else settings)


def now() -> datetime:
    return datetime.now(UTC)


async def tuples(
    conn: AsyncConnection[Row], query: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Run `query`; its rows as tuples. The pools hand out dict rows, whose construction was a
    visible cost where many rows come back (dedupe claims, the relay's batch, notifications)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode()  # JSON payloads (UTF-8); `recordset` converts them back to bytea
    raise TypeError(f"{type(value).__name__} is not a column value")


def recordset(
    types: Sequence[str], rows: Sequence[Sequence[Any]], names: Sequence[str] | None = None
) -> tuple[str, str, str]:
    """Rows as one JSON parameter: `(source, columns, json)` for
    `SELECT {columns} FROM {source}` with `json` as the statement's parameter.

    One `jsonb_to_recordset` parameter instead of one array parameter per column: psycopg dumps
    arrays element by element in Python (`ListDumper`, the largest single cost of the shipping
    actor at 280 orders/s), orjson writes the whole batch in C. Measured on 50 rows of five
    columns (uuid, text, text, timestamptz, jsonb), CPU per statement: arrays 714 us in the
    client and 190 us in Postgres; `jsonb_to_recordset` 167 and 160; `json_to_recordset` 192
    and 240 (a hash table per row). The columns are `names`, by default `c0`, `c1`, … in the
    order of `types`; a `bytea` column travels as UTF-8 text, `jsonb` columns take the value
    itself (a dict, not its JSON text)."""
    keys = list(names) if names is not None else [f"c{i}" for i in range(len(types))]
    defs = ", ".join(
        f"{k} {'text' if t == 'bytea' else t}" for k, t in zip(keys, types, strict=True)
    )
    columns = ", ".join(
        f"convert_to({k}, 'UTF8')" if t == "bytea" else k for k, t in zip(keys, types, strict=True)
    )
    return f"jsonb_to_recordset(%s::jsonb) AS v({defs})", columns, json_rows(keys, rows)


def json_rows(keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as a JSON array of objects with these keys, for `jsonb_to_recordset`."""
    return orjson.dumps(
        [dict(zip(keys, r, strict=True)) for r in rows], default=_json_default
    ).decode()


def uuid_array(ids: Iterable[uuid.UUID]) -> str:
    """A `uuid[]` literal (pass it as `%s::uuid[]`): psycopg would dump a list of UUIDs element
    by element in Python; a UUID's text needs no quoting."""
    return "{" + ",".join(map(str, ids)) + "}"


@dataclass(frozen=True, slots=True)
class Write:
    """One data-modifying statement with one JSON parameter (`inserting`, `updating`)."""

    sql: str
    doc: str


def inserting(
    head: str, types: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
) -> Write | None:
    """`head SELECT … FROM jsonb_to_recordset(…) tail`: all rows in one statement, one JSON
    parameter (`types`: the Postgres type of each column, e.g. `("uuid", "text")`; see
    `recordset`); None without rows.

    The statement's text does not depend on the number of rows, so psycopg parses it once and
    Postgres prepares it after a few runs. With adaptive batching (ADR-013) every batch size
    made the multi-row `VALUES` form a new statement: psycopg's query splitting was the largest
    Python cost of the shipping actor and the inventory shards in a profile at 300 orders/s.
    """
    if not rows:
        return None
    source, columns, doc = recordset(types, rows)
    return Write(f"{head} SELECT {columns} FROM {source} {tail}".rstrip(), doc)


def updating(
    update: str, types: Sequence[str], columns: str, where: str, rows: Sequence[Sequence[Any]]
) -> Write | None:
    """`update FROM jsonb_to_recordset(…) AS v(columns) WHERE where`: many rows, one statement
    whose text does not depend on their number (see `inserting`); None without rows."""
    if not rows:
        return None
    names = [c.strip() for c in columns.split(",")]
    source, _, doc = recordset(types, rows, names)
    return Write(f"{update} FROM {source} WHERE {where}", doc)


async def write_all(conn: AsyncConnection[Row], writes: Iterable[Write | None]) -> None:
    """Run the writes as one statement: all but the last become data-modifying CTEs of the last
    (`WITH w0 AS (…), w1 AS (…) <last>`), so a stage's writes cost one round trip and one
    statement instead of one each (ADR-009, amendment). Postgres runs every part to completion;
    the parts see the same snapshot, so no two of them may change the same row. The text
    depends only on which writes are present, so psycopg and Postgres keep a few prepared
    variants."""
    todo = [w for w in writes if w is not None]
    if not todo:
        return
    *ctes, main = todo
    head = ", ".join(f"w{i} AS ({w.sql})" for i, w in enumerate(ctes))
    await conn.execute(f"WITH {head} {main.sql}" if ctes else main.sql, [w.doc for w in todo])


async def connect_when_up(
    dsn: str, name: str, *, give_up_after_s: float | None = None
) -> AsyncConnection[Row]:
    """Connect, waiting for Postgres for as long as it takes (or `give_up_after_s`); with
    libpq's bounds (`CLIENT_TIMEOUTS`: a shard's owner session on a server gone away fails
    within ~15-25 s, and its watch ends the process)."""
    return await when_up(
        lambda: AsyncConnection.connect(
            bounded(dsn), autocommit=True, row_factory=dict_row, application_name=name
        ),
        name,
        give_up_after_s=give_up_after_s,
    )


async def when_up(
    step: Callable[[], Awaitable[T]], name: str, *, give_up_after_s: float | None = None
) -> T:
    """`step()`, retried while Postgres does not answer, for as long as it takes (or
    `give_up_after_s`). An actor's `__init__` runs its Postgres steps (connect, open its pool,
    load its state) this way: Ray never restarts an actor whose creation task raised, so an
    actor that restarted while Postgres was down, or saw it go away between its connect and its
    first read, would stay dead after Postgres came back. Every failure is logged (the first at
    once, then every ~10 s) with its cause, so a wrong DSN shows."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    logged: float | None = None
    pause = 0.2
    while True:
        try:
            return await step()
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            waited = loop.time() - start
            if give_up_after_s is not None and waited >= give_up_after_s:
                raise
            if logged is None or loop.time() - logged >= 10:
                logged = loop.time()
                log.warning(
                    "%s: Postgres not reachable after %.0f s (%s); retrying", name, waited, exc
                )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)
