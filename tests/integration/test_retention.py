"""A retention pass (adapters/retention.py) drops whole partitions older than each table's window,
keeps every row inside it, and a redelivery whose dedupe partition is gone is refused rather than
run twice. Runs on twelve days of history in a scratch schema (tests/integration/scratch.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from adapters import notifications, retention
from adapters.uow import Tx
from core.settings import Settings, get_settings
from domain.events import Envelope
from domain.notifications import Notification
from tests.integration.scratch import (
    alembic,
    connect,
    in_schema,
    owner_url,
    scratch_schema,
    uuid7_at,
)

NOW = datetime.now(UTC)  # set again by the `history` fixture, right before its rows are made
DAYS = 12
SETTINGS = Settings(kafka_retention_hours=24, dedupe_retention_hours=50, order_history_days=5)
KEYS = {"processed_events": "event_at", "notifications": "order_at", "order_events": "at"}


def _fill(url: str) -> None:
    """One order, its timeline, its notification and its dedupe row per hour of DAYS days."""
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO processed_events (consumer, event_id) "
            "SELECT 'inventory', x FROM unnest(%s::uuid[]) AS x",
            ([uuid7_at(NOW - timedelta(hours=h)) for h in range(DAYS * 24)],),
        )
        orders = [uuid7_at(NOW - timedelta(hours=h)) for h in range(DAYS * 24)]
        conn.execute(
            "INSERT INTO order_events (order_id, status, event, at) "
            "SELECT x, 'PENDING', 'E', now() - make_interval(hours => n::int - 1) "
            "FROM unnest(%s::uuid[]) WITH ORDINALITY AS u(x, n)",
            (orders,),
        )
        conn.execute(
            "INSERT INTO notifications (order_id, status, customer_id, channel, template, text) "
            "SELECT x, 'PAID', 'c', 'email', 't', 'x' FROM unnest(%s::uuid[]) AS x",
            (orders,),
        )


def _counts(url: str, since: dict[str, datetime]) -> dict[str, tuple[int, int, datetime]]:
    """Per table: rows newer than its window start, all rows, the oldest key."""
    out = {}
    with connect(url) as conn:
        for table, key in KEYS.items():
            row = conn.execute(
                f"SELECT count(*) FILTER (WHERE {key} >= %s) AS inside, count(*) AS total, "
                f"min({key}) AS oldest FROM {table}",
                (since[table],),
            ).fetchone()
            assert row is not None
            out[table] = (row["inside"], row["total"], row["oldest"])
    return out


def _clear_of_a_day_boundary() -> None:
    """Return once no table's window starts within 2 minutes of a UTC day boundary: the pass
    runs ~30 s after `NOW` by its own clock, and a window start that crossed midnight meanwhile
    dropped a day the assertions still count as inside (at most ~2 minutes' wait)."""
    while True:
        now = datetime.now(UTC)
        starts = [now - t.window(SETTINGS) for t in retention.TABLES]
        if all((s + timedelta(minutes=2)).date() == s.date() for s in starts):
            return
        time.sleep(5)


@pytest.fixture(scope="module")
def history() -> Iterator[dict[str, Any]]:
    """Twelve days of rows migrated into partitions, then one retention pass. `NOW` is taken
    here, not when the module was collected: the suite runs for half an hour before this, and a
    day boundary in between shifted every partition the assertions compare with it."""
    global NOW
    _clear_of_a_day_boundary()
    NOW = datetime.now(UTC)
    with scratch_schema("rettest") as url:
        alembic(url, "upgrade", "0005")
        _fill(url)
        alembic(url, "upgrade", "head")
        windows = {t.table: NOW - t.window(SETTINGS) for t in retention.TABLES}
        before = _counts(url, windows)
        sizes = asyncio.run(retention.report_dsn(url, SETTINGS))
        done = asyncio.run(retention.maintain_dsn(url, SETTINGS))
        yield {
            "url": url,
            "windows": windows,
            "before": before,
            "after": _counts(url, windows),
            "sizes": {r.table: r for r in sizes},
            "done": {m.table: m for m in done},
        }


def test_a_pass_keeps_every_row_inside_the_window(history: dict[str, Any]) -> None:
    for table in KEYS:
        inside_before, total_before, _ = history["before"][table]
        inside_after, total_after, oldest = history["after"][table]
        assert inside_after == inside_before > 0, table
        assert total_after < total_before, f"{table}: nothing dropped"
        start = history["windows"][table]
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        assert oldest >= day, f"{table}: a row older than its window's first day survived"


def test_a_pass_drops_whole_partitions_and_deletes_no_row(history: dict[str, Any]) -> None:
    with connect(history["url"]) as conn:
        for table in KEYS:
            dropped = history["done"][table].dropped
            assert dropped, table
            left = conn.execute(
                "SELECT count(*) AS n FROM pg_class WHERE relname = ANY(%s) "
                "AND relnamespace = current_schema()::regnamespace",
                (dropped,),
            ).fetchone()
            assert left == {"n": 0}
            deleted = conn.execute(
                "SELECT coalesce(sum(n_tup_del), 0) AS n FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname LIKE %s",
                (f"{table}_%",),
            ).fetchone()
            assert deleted == {"n": 0}


def test_the_ops_view_shows_sizes_the_oldest_partition_and_the_next_drop(
    history: dict[str, Any],
) -> None:
    after = {r.table: r for r in asyncio.run(retention.report_dsn(history["url"], SETTINGS))}
    for table in KEYS:
        before, now = history["sizes"][table], after[table]
        assert now.total_bytes < before.total_bytes
        assert now.oldest_from == history["done"][table].kept_from
        assert now.oldest_partition and now.oldest_partition.startswith(f"{table}_p")
        assert now.next_drop_at is not None and now.next_drop_at > NOW
        assert now.next_drop_at <= NOW + timedelta(days=1, minutes=1)
        assert now.partitions >= 7  # the coming week is made in advance
        assert set(now.to_json()) >= {"table", "totalBytes", "oldestPartition", "nextDropAt"}


def test_a_second_pass_drops_nothing_more(history: dict[str, Any]) -> None:
    again = asyncio.run(retention.maintain_dsn(history["url"], SETTINGS))
    assert [m.dropped for m in again] == [[], [], []]


async def _claim(url: str, *event_ids: uuid.UUID) -> list[Envelope]:
    events = [Envelope(event_id=e, type="OrderCreated", order_id=uuid.uuid4()) for e in event_ids]
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await Tx(conn).claim("inventory", events)


def test_a_redelivery_older_than_the_kept_partitions_is_refused_not_run_twice(
    history: dict[str, Any],
) -> None:
    url = history["url"]
    with pytest.raises(psycopg.errors.CheckViolation, match="processed_events_within_retention"):
        asyncio.run(_claim(url, uuid7_at(NOW - timedelta(days=8))))


def test_dedupe_still_holds_inside_the_window_and_for_ids_that_are_not_v7(
    history: dict[str, Any],
) -> None:
    url = history["url"]
    fresh, v4 = uuid7_at(NOW - timedelta(hours=1)), uuid.uuid4()
    assert len(asyncio.run(_claim(url, fresh, v4))) == 2
    assert asyncio.run(_claim(url, fresh, v4)) == []
    kept = uuid7_at(NOW - timedelta(hours=30))
    assert len(asyncio.run(_claim(url, kept))) == 1
    assert asyncio.run(_claim(url, kept)) == []


async def _notify(url: str, order_id: uuid.UUID) -> set[tuple[uuid.UUID, str]]:
    message = Notification(
        customer_id="c", status="SHIPPED", channel="email", template="t", text="x"
    )
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await notifications.record(
            conn, [(Envelope(type="ShippingUpdated", order_id=order_id), message)]
        )


def test_a_notification_for_an_order_past_its_history_is_refused(history: dict[str, Any]) -> None:
    url = history["url"]
    recent = uuid7_at(NOW - timedelta(days=2))
    assert asyncio.run(_notify(url, recent)) == {(recent, "SHIPPED")}
    assert asyncio.run(_notify(url, recent)) == set()
    with pytest.raises(psycopg.errors.CheckViolation, match="notifications_within_retention"):
        asyncio.run(_notify(url, uuid7_at(NOW - timedelta(days=9))))


def test_the_platform_role_runs_the_maintenance_but_cannot_drop_a_partition_itself(
    history: dict[str, Any],
) -> None:
    """The platform's role (DATABASE_URL) calls the owner's `retention_maintain`; DDL of its
    own it has none (docs/security.md)."""
    url, app_url = history["url"], in_schema(get_settings().database_url, _schema(history["url"]))
    app_role = conninfo_to_dict(get_settings().database_url).get("user")
    with connect(url) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA {_schema(url)} TO {app_role}")
    shorter = Settings(kafka_retention_hours=24, dedupe_retention_hours=26, order_history_days=4)
    done = {m.table: m for m in asyncio.run(retention.maintain_dsn(app_url, shorter))}
    assert done["order_events"].dropped and done["notifications"].dropped
    oldest = done["order_events"].kept_from
    assert oldest is not None and oldest <= NOW - timedelta(days=4)
    kept = asyncio.run(retention.report_dsn(app_url, shorter))
    victim = next(r.oldest_partition for r in kept if r.table == "order_events")
    if app_role != conninfo_to_dict(owner_url()).get("user"):
        with connect(app_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {victim}")


def _schema(url: str) -> str:
    with connect(url) as conn:
        row = conn.execute("SELECT current_schema() AS s").fetchone()
    assert row is not None
    return str(row["s"])


def test_a_busy_table_waits_for_the_next_run_and_the_run_goes_on() -> None:
    """pg_partman reports a lock it could not get as an error of its own (`RAISE EXCEPTION`),
    not as a lock timeout: the whole run failed at the busy table. Now each table that could
    not be maintained waits for the next run (pg_partman's own catalog reads may make the
    other tables wait for the busy one's lock too), and the next run catches up."""
    with scratch_schema("retbusy") as url:
        alembic(url, "upgrade", "0005")
        _fill(url)
        alembic(url, "upgrade", "head")
        state = retention.MaintenanceState()
        with connect(url) as holder, holder.transaction():
            holder.execute("LOCK TABLE processed_events IN ACCESS EXCLUSIVE MODE")
            done = asyncio.run(retention.maintain_dsn(url, SETTINGS, state))
            # (the others may have waited for its lock too: pg_partman reads the catalog)
            assert state.failed_runs["processed_events"] == 1 and not state.failing()
            asyncio.run(retention.maintain_dsn(url, SETTINGS, state))
            # twice in a row: the relay's health (and /ready) reports it
            assert "processed_events" in state.failing()
        assert "processed_events" not in {m.table for m in done}
        again = asyncio.run(retention.maintain_dsn(url, SETTINGS, state))
        assert "processed_events" in {m.table for m in again if m.dropped}
        assert state.to_json() == {"failing": {}, "failedRuns": {}}
        assert {m.table for m in [*done, *again] if m.dropped} == set(KEYS)


def test_a_key_past_the_partitions_made_ahead_is_refused_and_maintenance_goes_on(
    history: dict[str, Any],
) -> None:
    """Such a row stayed in the default partition, and every later maintenance run failed on
    the day it belongs to (Postgres refuses a partition whose rows the default one holds):
    the old partitions stayed and, a week on, every new row went to the default partition.
    The bound is the database's clock plus 7 days, not the partitions made: a row of today
    still goes to the default partition when its partition is missing."""
    url = history["url"]
    future = NOW + timedelta(days=30)
    with pytest.raises(psycopg.errors.CheckViolation, match="processed_events_within_retention"):
        asyncio.run(_claim(url, uuid7_at(future)))
    with pytest.raises(psycopg.errors.CheckViolation, match="notifications_within_retention"):
        asyncio.run(_notify(url, uuid7_at(future)))
    with connect(url) as conn, pytest.raises(psycopg.errors.CheckViolation, match="order_events"):
        conn.execute(
            "INSERT INTO order_events (order_id, status, event, at) VALUES (%s, 'PAID', 'E', %s)",
            (uuid.uuid4(), future),
        )
    soon = uuid7_at(NOW + timedelta(days=2))  # a clock a little ahead: its day's partition
    assert len(asyncio.run(_claim(url, soon))) == 1
    done = asyncio.run(retention.maintain_dsn(url, SETTINGS))
    assert {m.table for m in done} == set(KEYS)


def _drop_newest(url: str) -> dict[str, Any]:
    """Drop the newest partition of `processed_events` (a day ahead maintenance has not made,
    or made under another name); its `partition`, `lower_bound` and `upper_bound`."""
    with connect(url) as conn:
        newest = conn.execute(
            "SELECT partition, lower_bound, upper_bound FROM retention_partitions("
            "'processed_events') ORDER BY upper_bound DESC LIMIT 1"
        ).fetchone()
        assert newest is not None
        conn.execute(f"DROP TABLE {newest['partition']}")
    return newest


def test_a_key_in_a_day_ahead_not_made_yet_is_refused_and_maintenance_goes_on() -> None:
    """Migration 0017: the guard's bound was `now() + 7 days`, pg_partman's horizon. With the
    last day ahead not made (a day of failed maintenance), a key in it passed the guard, landed
    in the default partition, and every later run failed on that day. Now 6 days."""
    with scratch_schema("retahead") as url:
        alembic(url, "upgrade", "head")
        asyncio.run(retention.maintain_dsn(url, SETTINGS))  # the guards, as every run puts them
        newest = _drop_newest(url)  # not made yet
        key = uuid7_at(newest["lower_bound"] + timedelta(minutes=1))
        with pytest.raises(psycopg.errors.CheckViolation, match="processed_events_within"):
            asyncio.run(_claim(url, key))
        done = asyncio.run(retention.maintain_dsn(url, SETTINGS))
        assert "processed_events" in {m.table for m in done}
        with connect(url) as conn:
            made = conn.execute(
                "SELECT count(*) AS n FROM retention_partitions('processed_events') "
                "WHERE lower_bound = %s",
                (newest["lower_bound"],),
            ).fetchone()
        assert made == {"n": 1}


def test_maintenance_makes_days_in_the_servers_time_zone_whatever_the_callers(
    history: dict[str, Any],
) -> None:
    """pg_partman names a day's partition after its start in the session's time zone and passes
    over a name that exists: a caller west of the server's zone named the newest day after the
    day before it, and that day was never made."""
    url = history["url"]
    newest = _drop_newest(url)
    options = conninfo_to_dict(url).get("options") or ""
    west = make_conninfo(url, options=f"{options} -ctimezone=America/Los_Angeles")
    asyncio.run(retention.maintain_dsn(west, SETTINGS))
    with connect(url) as conn:
        made = conn.execute(
            "SELECT partition FROM retention_partitions('processed_events') WHERE upper_bound = %s",
            (newest["upper_bound"],),
        ).fetchone()
    assert made == {"partition": newest["partition"]}
