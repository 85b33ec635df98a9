"""The benchmark's tracker against a real order: its outcome carries the time of every stage
(`benchdb.STAGES`), in the order the pipeline ran them, so `make bench` can time each hop."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import psycopg

from adapters import benchdb
from bench.stats import HOPS, hop_latencies
from bench.tracker import Tracker
from core.settings import Settings
from tests.integration.conftest import Api
from tests.integration.scratch import owner_url, scratch_schema


def test_a_delivered_order_has_every_stage_time_in_pipeline_order(
    api: Api, customer: str, settings: Settings
) -> None:
    api.set_available("SKU-91", 10)
    order_id = api.place_ok(customer, [("SKU-91", 1)])
    api.wait_status(customer, order_id, "DELIVERED")

    async def track() -> Tracker:
        tracker = Tracker(settings.database_url)
        await tracker.open()
        try:
            tracker.add(order_id, 0.0)
            assert await tracker.poll() == 1
        finally:
            await tracker.close()
        return tracker

    outcome = asyncio.run(track()).outcomes[uuid.UUID(order_id)]
    assert outcome.status == "DELIVERED"
    times = (outcome.created_at, *outcome.stages)
    assert len(times) == len(HOPS) + 1 and None not in times, times
    # accepted, reserved, paid, shipment created, shipped: in that order
    assert list(times) == sorted(t for t in times if t is not None)
    assert outcome.shipped_at == outcome.stages[-1]
    hops = hop_latencies([outcome])
    assert list(hops) == list(HOPS) and all(h["p50"] >= 0 for h in hops.values())
    total = sum(h["p50"] for h in hops.values())
    assert abs(total - (outcome.e2e_s or 0) * 1000) < 1.0  # the hops add up to accept→SHIPPED


def test_the_tracker_sees_a_vacuum_while_it_runs(settings: Settings) -> None:
    """`maintenance()` counts a running VACUUM (a slow one, of a table in a scratch schema, on a
    connection of the owner's) and nothing once it is gone."""
    with scratch_schema("vacuum") as owner:
        seen, after = asyncio.run(_watch_a_vacuum(settings, owner))
    assert seen >= 1 and after == 0


async def _watch_a_vacuum(settings: Settings, owner: str) -> tuple[int, int]:
    tracker = Tracker(settings.database_url)
    await tracker.open()
    vacuumer = await psycopg.AsyncConnection.connect(owner, autocommit=True)
    try:
        await vacuumer.execute(
            "CREATE TABLE slow AS SELECT g AS n FROM generate_series(1, 200000) g"
        )
        await vacuumer.execute("UPDATE slow SET n = n + 1")  # dead rows for the vacuum
        await vacuumer.execute("SET vacuum_cost_delay = '100ms'")
        await vacuumer.execute("SET vacuum_cost_limit = 1")
        vacuum = asyncio.create_task(vacuumer.execute("VACUUM slow"))
        seen, deadline = 0, time.monotonic() + 10
        while seen == 0 and time.monotonic() < deadline:
            seen = await tracker.maintenance()
            await asyncio.sleep(0.05)
        vacuumer.cancel()
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            await vacuum
        after, deadline = 1, time.monotonic() + 10
        while after and time.monotonic() < deadline:
            after = await tracker.maintenance()
            await asyncio.sleep(0.05)
        return seen, after
    finally:
        await vacuumer.close()
        await tracker.close()


def test_the_database_size_is_the_one_postgres_reports_and_counts_the_orders(
    api: Api, customer: str, settings: Settings
) -> None:
    """`make bench` records the database it ran on: its size, and the orders table's row
    estimate, fresh after an ANALYZE by the table's owner."""
    api.set_available("SKU-92", 10)
    api.place_ok(customer, [("SKU-92", 1)])
    with psycopg.connect(owner_url(), autocommit=True) as owner:
        owner.execute("ANALYZE orders")
        orders = owner.execute("SELECT count(*) FROM orders").fetchone()
    assert orders is not None and orders[0] >= 1

    async def measure() -> dict[str, int]:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await benchdb.database_size(conn)

    size = asyncio.run(measure())
    assert size["size_bytes"] > 1_000_000  # the schema alone is several MB
    # ANALYZE reads at most 30,000 rows: exact below that, an extrapolation above (a bloated
    # table of millions of rows, a developer's stack, may be off by some per cent)
    assert abs(size["orders_estimate"] - orders[0]) <= max(5, orders[0] // 4), (size, orders)
