"""Stock set-up before the run and the oversell audit after it."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg
from psycopg.rows import TupleRow

from bench.workload import SCARCE_SKUS

Conn = psycopg.AsyncConnection[TupleRow]
# Every order of the run's customers, also those the gateway stored after the client gave up
# waiting (no 202 seen, so not tracked): an oversell by those would count all the same.
_SHIPPED_UNITS = (
    "SELECT i->>'sku', sum((i->>'qty')::int) FROM orders o, jsonb_array_elements(o.items) i "
    "WHERE o.principal = ANY(%s) AND EXISTS (SELECT 1 FROM order_events e "
    "WHERE e.order_id = o.id AND e.status = 'SHIPPED') GROUP BY 1"
)


async def snapshot(conn: Conn) -> dict[str, tuple[int, int]]:
    """`sku → (on_hand, reserved)` of every SKU."""
    cur = await conn.execute("SELECT sku, on_hand, reserved FROM inventory")
    return {str(sku): (int(on), int(res)) for sku, on, res in await cur.fetchall()}


async def make_scarce(base_url: str, admin_token: str, conn: Conn, units: int) -> None:
    """Leave exactly `units` available on each scarce SKU (through the admin API, so the
    owning inventory shard changes it), whatever earlier runs left reserved."""
    before = await snapshot(conn)
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with aiohttp.ClientSession(base_url, headers=headers) as session:
        for sku in SCARCE_SKUS:
            reserved = before[sku][1]
            body = {"onHand": reserved + units}
            async with session.put(f"/api/inventory/{sku}", json=body) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    raise RuntimeError(f"PUT /api/inventory/{sku} answered {resp.status}: {text}")


async def audit(
    conn: Conn, principals: list[str], tracked: int, start: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    """Oversold units (shipped beyond what was available at the start, per SKU) by the orders of
    `principals`, rows that break the stock invariants (on_hand < 0, reserved < 0,
    reserved > on_hand), and how many orders were stored without the client seeing the 202."""
    cur = await conn.execute("SELECT count(*) FROM orders WHERE principal = ANY(%s)", (principals,))
    stored = await cur.fetchone()
    cur = await conn.execute(_SHIPPED_UNITS, (principals,))
    shipped = {str(sku): int(units) for sku, units in await cur.fetchall()}
    oversold = {
        sku: units - (start[sku][0] - start[sku][1])
        for sku, units in shipped.items()
        if sku in start and units > start[sku][0] - start[sku][1]
    }
    cur = await conn.execute(
        "SELECT count(*) FROM inventory WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand"
    )
    row = await cur.fetchone()
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
        "invariantViolations": int(row[0]) if row else 0,
        "scarceSkus": scarce,
        "shippedUnits": sum(shipped.values()),
        "storedWithout202": max(0, (int(stored[0]) if stored else 0) - tracked),
    }
