"""Migration 0006 upgrades a database with data in it: every row of the three append-only
tables survives, lands in the partition of its time, and the keys still dedupe through the
platform's own statements; the downgrade gives the rows back; the result matches the declared
schema. Runs in a scratch schema of the stack's database (tests/integration/scratch.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from sqlalchemy import create_engine

from adapters import notifications
from adapters.schema import include_name, metadata
from adapters.uow import Tx
from domain.events import Envelope
from domain.notifications import Notification
from tests.integration.scratch import (
    alembic,
    connect,
    round_trip,
    scratch_schema,
    time_of,
    uuid7_at,
)

PREVIOUS = "0005"
NOW = datetime.now(UTC)
AGES = (timedelta(days=9, hours=3), timedelta(days=1), timedelta(minutes=5))
SNAPSHOT = {
    "processed_events": "SELECT consumer, event_id, processed_at FROM processed_events",
    "order_events": "SELECT id, order_id, status, event, at, detail::text FROM order_events",
    "notifications": "SELECT order_id, status, customer_id, text, created_at FROM notifications",
    "orders": "SELECT id, status FROM orders",
}


def _snapshot(url: str) -> dict[str, set[tuple[Any, ...]]]:
    with connect(url) as conn:
        return {t: {tuple(r.values()) for r in conn.execute(q)} for t, q in SNAPSHOT.items()}


def _fill(url: str) -> dict[str, uuid.UUID]:
    """Rows as the platform wrote them before 0006: three orders of different ages with their
    timeline, dedupe rows and notifications; plus a v4 event and order id (any uuid is legal)."""
    ids: dict[str, uuid.UUID] = {}
    with connect(url) as conn:
        for n, age in enumerate(AGES):
            at = NOW - age
            oid, eid = uuid7_at(at), uuid7_at(at + timedelta(seconds=1))
            ids[f"order{n}"], ids[f"event{n}"] = oid, eid
            conn.execute(
                "INSERT INTO orders (id, principal, customer_id, status, items, total, currency, "
                "payment_method, created_at, updated_at) VALUES (%s, 'p', 'c-1', 'DELIVERED', "
                "'[]', 10, 'EUR', 'card', %s, %s)",
                (oid, at, at),
            )
            for step, status in enumerate(("PENDING", "RESERVED", "PAID")):
                conn.execute(
                    "INSERT INTO order_events (order_id, status, event, at, detail) "
                    "VALUES (%s, %s, 'E', %s, '{\"n\": 1}')",
                    (oid, status, at + timedelta(seconds=step)),
                )
                conn.execute(
                    "INSERT INTO notifications (order_id, status, customer_id, channel, template, "
                    "text) VALUES (%s, %s, 'c-1', 'email', 't', 'x')",
                    (oid, status),
                )
            for consumer in ("inventory", "payment"):
                conn.execute(
                    "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s)",
                    (consumer, eid),
                )
        ids["v4event"], ids["v4order"] = uuid.uuid4(), uuid.uuid4()
        conn.execute(
            "INSERT INTO processed_events (consumer, event_id) VALUES ('inventory', %s)",
            (ids["v4event"],),
        )
        conn.execute(
            "INSERT INTO notifications (order_id, status, customer_id, channel, template, text) "
            "VALUES (%s, 'PAID', 'c-1', 'email', 't', 'x')",
            (ids["v4order"],),
        )
    return ids


@pytest.fixture(scope="module")
def migrated() -> Iterator[tuple[str, dict[str, uuid.UUID], dict[str, set[tuple[Any, ...]]]]]:
    """A scratch schema at the previous head with data, then upgraded to head."""
    with scratch_schema("migtest") as url:
        alembic(url, "upgrade", PREVIOUS)
        ids = _fill(url)
        before = _snapshot(url)
        alembic(url, "upgrade", "head")
        yield url, ids, before


def test_upgrade_keeps_every_row(migrated: tuple[str, Any, Any]) -> None:
    url, _, before = migrated
    after = _snapshot(url)
    for table, rows in before.items():
        assert after[table] == rows, table
    assert len(before["processed_events"]) == 7 and len(before["order_events"]) == 9


def test_rows_land_in_the_partition_of_the_time_in_their_id(
    migrated: tuple[str, dict[str, uuid.UUID], Any],
) -> None:
    url, ids, _ = migrated
    with connect(url) as conn:
        for n, age in enumerate(AGES):
            row = conn.execute(
                "SELECT event_at, tableoid::regclass::text AS part FROM processed_events "
                "WHERE event_id = %s LIMIT 1",
                (ids[f"event{n}"],),
            ).fetchone()
            assert row is not None and row["event_at"] == time_of(ids[f"event{n}"])
            day = (NOW - age + timedelta(seconds=1)).strftime("%Y_%m_%d")
            assert row["part"] == f"processed_events_p{day}"
        v4 = conn.execute(
            "SELECT event_at = '-infinity' AS never, tableoid::regclass::text AS part "
            "FROM processed_events WHERE event_id = %s",
            (ids["v4event"],),
        ).fetchone()
        assert v4 == {"never": True, "part": "processed_events_default"}
        wrong = conn.execute(
            "SELECT (SELECT count(*) FROM processed_events WHERE event_at <> uuid7_time(event_id))"
            " + (SELECT count(*) FROM notifications WHERE order_at <> uuid7_time(order_id)) AS n"
        ).fetchone()
        assert wrong == {"n": 0}


async def _claims(url: str, ids: dict[str, uuid.UUID]) -> tuple[list[Any], list[Any], list[Any]]:
    old = [
        Envelope(event_id=ids[k], type="OrderCreated", order_id=uuid.uuid4())
        for k in ("event0", "event1", "event2", "v4event")
    ]
    fresh = Envelope(type="OrderCreated", order_id=uuid.uuid4())
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        tx = Tx(conn)
        return (
            await tx.claim("inventory", old),
            await tx.claim("inventory", [fresh]),
            await tx.claim("inventory", [fresh, *old]),
        )


def test_the_claim_statement_still_dedupes_against_migrated_rows(
    migrated: tuple[str, dict[str, uuid.UUID], Any],
) -> None:
    url, ids, _ = migrated
    seen_again, first, second = asyncio.run(_claims(url, ids))
    assert seen_again == []
    assert len(first) == 1
    assert second == []


async def _notify(url: str, ids: dict[str, uuid.UUID]) -> tuple[set[Any], set[Any]]:
    def message(status: str) -> Notification:
        return Notification(
            customer_id="c-1", status=status, channel="email", template="t", text="x"
        )

    rows = [
        (Envelope(type="StockReserved", order_id=ids["order0"]), message("PAID")),
        (Envelope(type="StockReserved", order_id=ids["v4order"]), message("PAID")),
        (Envelope(type="StockReserved", order_id=ids["order1"]), message("SHIPPED")),
    ]
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return await notifications.record(conn, rows), await notifications.record(conn, rows)


def test_notifications_are_still_sent_once_per_order_and_status(
    migrated: tuple[str, dict[str, uuid.UUID], Any],
) -> None:
    url, ids, _ = migrated
    first, again = asyncio.run(_notify(url, ids))
    assert first == {(ids["order1"], "SHIPPED")}
    assert again == set()


def test_timeline_ids_continue_after_the_migrated_ones(migrated: tuple[str, Any, Any]) -> None:
    url, _, before = migrated
    with connect(url) as conn:
        row = conn.execute(
            "INSERT INTO order_events (order_id, status, event, at) "
            "VALUES (gen_random_uuid(), 'PENDING', 'E', now()) RETURNING id"
        ).fetchone()
        conn.execute("DELETE FROM order_events WHERE id = %s", (row["id"] if row else 0,))
    assert row is not None and row["id"] > max(r[0] for r in before["order_events"])


def test_migrated_schema_matches_the_declared_one(migrated: tuple[str, Any, Any]) -> None:
    url, _, _ = migrated
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff: list[Any] = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_gives_every_row_back_and_upgrade_again_works() -> None:
    with round_trip("migdown", PREVIOUS, _fill, _snapshot) as (url, before):
        assert _snapshot(url) == before
        with connect(url) as conn:
            kinds = conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relnamespace = "
                "current_schema()::regnamespace AND relname IN "
                "('processed_events', 'order_events', 'notifications')"
            ).fetchall()
            configs = conn.execute(
                "SELECT count(*) AS n FROM partman.part_config WHERE parent_table LIKE "
                "current_schema() || '.%'"
            ).fetchone()
        assert {r["relkind"] for r in kinds} == {"r"} and len(kinds) == 3
        assert configs == {"n": 0}
        alembic(url, "upgrade", "head")
        assert _snapshot(url) == before


def test_uuid7_time_reads_the_ids_time_and_is_inlined(
    migrated: tuple[str, dict[str, uuid.UUID], Any],
) -> None:
    url, ids, _ = migrated
    with connect(url) as conn:
        row = conn.execute(
            "SELECT uuid7_time(%s) AS v7, uuid7_time(%s) = '-infinity' AS v4, "
            "uuid7_time(NULL) IS NULL AS null",
            (ids["event0"], ids["v4event"]),
        ).fetchone()
        plan = conn.execute(
            "EXPLAIN VERBOSE SELECT uuid7_time(x) FROM unnest(%s::uuid[]) AS x",
            ([ids["event0"]],),
        ).fetchall()
    assert row == {"v7": time_of(ids["event0"]), "v4": True, "null": True}
    # inlined: the plan shows the expression, not a call (a call cost ~5x more per row)
    assert not any("uuid7_time" in str(r) for r in plan), plan


@pytest.mark.parametrize(
    ("age", "said"),
    [
        (timedelta(days=500), "1 rows keyed more than 400 days back"),
        (-timedelta(days=8), "1 keyed 7 days"),
    ],
    ids=["a-clock-reset", "a-clock-ahead"],
)
def test_keys_far_back_or_ahead_stop_the_upgrade_before_it_changes_anything(
    age: timedelta, said: str
) -> None:
    """A key of long ago made a partition per day back to it, all in one transaction (a 1970
    id: ~20,000 per table, out of lock slots hours later); one a week or more ahead went to the
    default partition and wedged every maintenance of its table."""
    with scratch_schema("migodd") as url:
        alembic(url, "upgrade", PREVIOUS)
        with connect(url) as conn:
            conn.execute(
                "INSERT INTO processed_events (consumer, event_id) VALUES ('inventory', %s)",
                (uuid7_at(NOW - age),),
            )
        with pytest.raises(AssertionError) as failed:
            alembic(url, "upgrade", "0006")
        assert said in str(failed.value) and "nothing was changed" in str(failed.value)
        with connect(url) as conn:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == {"version_num": PREVIOUS}
