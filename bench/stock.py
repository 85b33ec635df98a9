"""Stock set-up before the run and the oversell audit after it."""

from __future__ import annotations

from typing import Any

import aiohttp

from adapters import benchdb
from adapters.benchdb import Conn
from bench.workload import SCARCE_SKUS


async def snapshot(conn: Conn) -> dict[str, tuple[int, int]]:
    """`sku → (on_hand, reserved)` of every SKU."""
    return await benchdb.inventory(conn)


async def make_scarce(base_url: str, admin_token: str, conn: Conn, units: int) -> dict[str, int]:
    """Leave exactly `units` available on each scarce SKU (through the admin API, so the
    owning inventory shard changes it), whatever earlier runs left reserved. Returns the
    on-hand units this added to each (negative: took away), against on hand as read just
    before: what `bench.oversell` counts as restocked."""
    before = await snapshot(conn)
    headers = {"Authorization": f"Bearer {admin_token}"}
    added: dict[str, int] = {}
    async with aiohttp.ClientSession(base_url, headers=headers) as session:
        for sku in SCARCE_SKUS:
            on_hand, reserved = before[sku]
            body = {"onHand": reserved + units}
            async with session.put(f"/api/inventory/{sku}", json=body) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    raise RuntimeError(f"PUT /api/inventory/{sku} answered {resp.status}: {text}")
            added[sku] = reserved + units - on_hand
    return added


async def audit(
    conn: Conn, principals: list[str], tracked: int, start: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    """Oversold units (shipped beyond what was available at the start, per SKU) by the orders of
    `principals`, rows that break the stock invariants (on_hand < 0, reserved < 0,
    reserved > on_hand: the table's CHECK constraints refuse those, so this count stays 0;
    `bench.end_audit` checks the invariants a run can break), and how many orders were stored
    without the client seeing the 202. Every order of the customers counts, also those the
    gateway stored after the client gave up waiting (no 202 seen, so not tracked): an oversell
    by those would count all the same."""
    stored = await benchdb.orders_of(conn, principals)
    shipped = await benchdb.shipped_units(conn, principals)
    oversold = {
        sku: units - (start[sku][0] - start[sku][1])
        for sku, units in shipped.items()
        if sku in start and units > start[sku][0] - start[sku][1]
    }
    violations = await benchdb.stock_violations(conn)
    end = await snapshot(conn)
    scarce = {
        sku: {
            "availableAtStart": start[sku][0] - start[sku][1],
            "shippedUnits": shipped.get(sku, 0),
            "onHandEnd": end[sku][0],
            "reservedEnd": end[sku][1],
        }
        for sku in SCARCE_SKUS
        if sku in start and sku in end
    }
    return {
        "oversold": sum(oversold.values()),
        "oversoldBySku": oversold,
        "invariantViolations": violations,
        "scarceSkus": scarce,
        "shippedUnits": sum(shipped.values()),
        "storedWithout202": max(0, stored - tracked),
    }
