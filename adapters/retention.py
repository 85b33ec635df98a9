"""Retention of the append-only tables (docs/adr/ADR-012-retention.md).

Each is a set of daily partitions managed by pg_partman (migration 0006). `maintain` gives
pg_partman the windows from the settings and runs its maintenance, which makes the partitions
of the coming days and drops every partition older than its table's window, whole: no DELETE,
no dead rows, no vacuum debt. `report` is the ops view: sizes, the oldest partition and when
it goes. `maintenance_loop` runs `maintain` periodically inside any long-lived process.

A dedupe key (`processed_events`' event id, `notifications`' order id) lands in the partition
of the time inside that UUIDv7 id, so a redelivery always meets its first delivery's row while
that partition exists. Once it is dropped, the day's ids would fall into the default partition
and pass as new: a check on the default partition (`<table>_within_retention`) refuses them
instead, so such a late event goes to its dead-letter topic rather than running twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from adapters.pg import Row
from core.errors import one_line
from core.settings import Settings

log = logging.getLogger(__name__)
Conn = AsyncConnection[Row]


@dataclass(frozen=True, slots=True)
class Partitioned:
    """A partitioned table: its partition key and whether that key is a dedupe key's time."""

    table: str
    key: str
    dedupe: bool

    def window(self, settings: Settings) -> timedelta:
        """How long its rows are kept (at least; a partition goes once all of it is older)."""
        if self.table == "processed_events":
            return timedelta(hours=settings.dedupe_retention_hours)
        return timedelta(days=settings.order_history_days)


TABLES = (
    Partitioned("processed_events", "event_at", dedupe=True),
    Partitioned("notifications", "order_at", dedupe=True),
    Partitioned("order_events", "at", dedupe=False),
)


@dataclass(frozen=True, slots=True)
class TableRetention:
    """The ops view of one partitioned table (sizes are the sum over its partitions)."""

    table: str
    total_bytes: int
    rows_estimate: int
    partitions: int
    oldest_partition: str | None
    oldest_from: datetime | None
    retention: timedelta
    next_drop_at: datetime | None  # when all of the oldest partition is older than the window
    default_rows: int  # rows in no dated partition (ids that are not UUIDv7; no partition yet)

    def to_json(self) -> dict[str, Any]:
        """camelCase keys, times in ISO 8601, `retention` in hours (/ready, `orders status`)."""
        out = asdict(self)
        out["retention"] = self.retention.total_seconds() / 3600
        for name in ("oldest_from", "next_drop_at"):
            value = out[name]
            out[name] = None if value is None else value.isoformat()
        return {_camel(k): v for k, v in out.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def report(conn: Conn, settings: Settings) -> list[TableRetention]:
    """Sizes, oldest partition and next drop of every partitioned table. Catalog and
    statistics reads only: any role may call it (the gateway's /ready, `orders status`)."""
    return [await _table_report(conn, t, t.window(settings)) for t in TABLES]


async def report_dsn(dsn: str, settings: Settings) -> list[TableRetention]:
    """`report` over a connection of its own."""
    async with await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return await report(conn, settings)


# `pg_get_expr(relpartbound, 0)`: a bound holds only constants, and the form with the oid
# opens (and waits for the lock of) each partition the planner evaluates it for (migration 0013)
_PARTITIONS = """
SELECT c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, 0), 'FROM \\(''([^'']+)''\\)'))[1]
           AS lower_bound,
       (regexp_match(pg_get_expr(c.relpartbound, 0), 'TO \\(''([^'']+)''\\)'))[1]
           AS upper_bound,
       pg_total_relation_size(c.oid) AS bytes, greatest(c.reltuples, 0)::bigint AS est,
       pg_stat_get_live_tuples(c.oid) AS live
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass
"""


async def _partitions(conn: Conn, table: str) -> list[Row]:
    """Every partition of `table`: name, bounds (None for the default), size, row estimate."""
    cur = await conn.execute(_PARTITIONS, (table,))
    rows = await cur.fetchall()
    for r in rows:
        for bound in ("lower_bound", "upper_bound"):
            r[bound] = None if r[bound] is None else datetime.fromisoformat(r[bound])
    return rows


async def _table_report(conn: Conn, t: Partitioned, window: timedelta) -> TableRetention:
    parts = await _partitions(conn, t.table)
    ranged = sorted((p for p in parts if p["lower_bound"] is not None), key=_lower)
    oldest = ranged[0] if ranged else None
    return TableRetention(
        table=t.table,
        total_bytes=sum(int(p["bytes"]) for p in parts),
        rows_estimate=sum(max(int(p["est"]), int(p["live"])) for p in parts),
        partitions=len(ranged),
        oldest_partition=oldest["name"] if oldest else None,
        oldest_from=oldest["lower_bound"] if oldest else None,
        retention=window,
        next_drop_at=oldest["upper_bound"] + window if oldest else None,
        default_rows=sum(int(p["live"]) for p in parts if p["lower_bound"] is None),
    )


def _lower(partition: Row) -> datetime:
    bound: datetime = partition["lower_bound"]
    return bound


@dataclass(frozen=True, slots=True)
class Maintained:
    """What one maintenance run did to one table."""

    table: str
    dropped: list[str]
    created: list[str]
    kept_from: datetime | None  # lower bound of the oldest partition kept


@dataclass(slots=True)
class MaintenanceState:
    """What the maintenance runs left behind, for the relay's health (and so `/ready`): the
    tables whose maintenance failed, and in how many runs in a row. One busy lock is the next
    run's; a table that failed twice running needs an operator (ADR-012: e.g. rows in its
    default partition after a lapse of more than 7 days)."""

    failed_runs: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def record(self, table: str, error: str | None) -> None:
        if error is None:
            self.failed_runs.pop(table, None)
            self.errors.pop(table, None)
        else:
            self.failed_runs[table] = self.failed_runs.get(table, 0) + 1
            self.errors[table] = error

    def failing(self) -> dict[str, str]:
        """Tables whose maintenance failed in the last two runs or more → the last error."""
        return {t: self.errors[t] for t, n in self.failed_runs.items() if n >= 2}

    def to_json(self) -> dict[str, Any]:
        return {"failing": self.failing(), "failedRuns": dict(self.failed_runs)}


async def maintain(
    conn: Conn, settings: Settings, state: MaintenanceState | None = None
) -> list[Maintained]:
    """Give each table its window from the settings, let pg_partman make the coming partitions
    and drop those past the window, then move the table's dedupe guard to the oldest partition
    kept: `retention_maintain()` (migrations 0007, 0015), which runs with the tables' owner's
    rights, so the platform's own role may call it. One transaction per table (`conn` in
    autocommit). A lock is waited for 500 ms at a time (every writer of the table queues behind
    the wait), `BUSY_TRIES` times `BUSY_PAUSE_S` apart; a table still busy, or whose maintenance
    pg_partman refused (it reports every error, a lock timeout too, as an error of its own), is
    left for the next run: the other tables are maintained all the same. `state` records each
    table's outcome."""
    done: list[Maintained] = []
    state = state if state is not None else MaintenanceState()
    for t in TABLES:
        maintained, error = await _maintain_table(conn, t, settings)
        if maintained is not None:
            done.append(maintained)
        if error is not None:
            log.warning("retention: %s not maintained (%s); next run tries again", t.table, error)
        state.record(t.table, error)
    return done


BUSY_TRIES = 3
BUSY_PAUSE_S = 2.0


async def _maintain_table(
    conn: Conn, t: Partitioned, settings: Settings
) -> tuple[Maintained | None, str | None]:
    """One table's maintenance, tried again while its lock is busy; its outcome or the error
    (pg_partman's own report, a lock timeout, a deadlock, the connection lost)."""
    error = None
    for attempt in range(BUSY_TRIES):
        if attempt:
            await asyncio.sleep(BUSY_PAUSE_S)
        try:
            cur = await conn.execute(
                "SELECT dropped, created, kept_from FROM retention_maintain(%s, %s)",
                (t.table, t.window(settings)),
            )
        except psycopg.Error as exc:
            error = one_line(exc)[:300]
            if _busy(exc):
                continue
            return None, error
        row = await cur.fetchone()
        if row is None:
            return None, None
        return Maintained(t.table, row["dropped"], row["created"], row["kept_from"]), None
    return None, error


def _busy(exc: psycopg.Error) -> bool:
    """A lock not granted in time: as Postgres reports it, or inside pg_partman's own report."""
    return isinstance(exc, psycopg.errors.LockNotAvailable) or "lock timeout" in str(exc)


async def maintain_dsn(
    dsn: str, settings: Settings, state: MaintenanceState | None = None
) -> list[Maintained]:
    """`maintain` over a connection of its own."""
    async with await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return await maintain(conn, settings, state)


async def maintenance_loop(
    settings: Settings,
    state: MaintenanceState | None = None,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `maintain` now and then every `PARTITION_MAINTENANCE_S` seconds, forever; a failed
    run (database restarting, lock busy) is logged and retried at the next period. Start it
    as a task of one long-lived process of the platform, whose role is enough (migration 0007);
    pg_partman's maintenance is safe to run twice, even at once (it locks). `state`: each
    table's outcome (a run that could not reach Postgres fails every table's)."""
    state = state if state is not None else MaintenanceState()
    while True:
        try:
            for m in await maintain_dsn(settings.database_url, settings, state):
                if m.dropped or m.created:
                    log.info("retention: %s dropped %s, created %s", m.table, m.dropped, m.created)
        except (psycopg.Error, OSError) as exc:
            log.warning("retention: maintenance failed (%s); retrying next period", exc)
            for t in TABLES:
                state.record(t.table, f"no connection: {type(exc).__name__}"[:300])
        await pause(settings.partition_maintenance_s)
