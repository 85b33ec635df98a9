"""Shipment timers rebuilt after a restart keep their times: `in_flight` reads how long ago
each shipment's status changed (Postgres's clock), and the next step is due at what is left
of its delay. Rows are written in a transaction that is rolled back, so the running shipping
actor never sees them."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from psycopg.rows import dict_row

from adapters import shipments as sql
from core.settings import Settings
from domain import shipping as rules


async def _ages(
    settings: Settings, rows: list[tuple[uuid.UUID, str, float]]
) -> dict[uuid.UUID, tuple[str, float]]:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row
    ) as conn:
        for oid, status, ago in rows:
            await conn.execute(
                "INSERT INTO shipments (order_id, tracking, status, updated_at) "
                "VALUES (%s, 'TRK-TIMER', %s, now() - make_interval(secs => %s))",
                (oid, status, ago),
            )
        found = await sql.in_flight(conn, [oid for oid, _, _ in rows])
        await conn.rollback()
    return {oid: (status, age) for oid, status, age in found}


def test_in_flight_reports_each_shipment_s_age_and_only_those_with_a_step_left(
    settings: Settings,
) -> None:
    created, shipped, done = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    found = asyncio.run(
        _ages(
            settings,
            [(created, rules.CREATED, 30.0), (shipped, rules.SHIPPED, 2.0), (done, "DELIVERED", 5)],
        )
    )
    assert set(found) == {created, shipped}
    status, age = found[created]
    assert status == rules.CREATED and 30.0 <= age < 40.0
    status, age = found[shipped]
    assert status == rules.SHIPPED and 2.0 <= age < 12.0
    # a CREATED shipment 30 s old is overdue for a 5 s SHIPPED delay; a SHIPPED one 2 s old
    # still waits the rest of a 60 s DELIVERED delay
    assert rules.left_s(rules.SHIPPED, found[created][1], 5.0, 60.0) == 0.0
    assert 48.0 < rules.left_s(rules.DELIVERED, found[shipped][1], 5.0, 60.0) <= 58.0
