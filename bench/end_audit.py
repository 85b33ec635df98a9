"""The audit of the stock's bookkeeping at the end of a whole `make bench` run, every phase
drained: the invariants `orders chaos` checks (`adapters.audit`) over every order of the run,
and that every one of those orders is terminal.
(`bench.stock.audit`, after the main run, and `bench.oversell`, over the whole run, count
oversold units; the rows the former counts as breaking an invariant are ones the table's CHECK
constraints refuse.)"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from adapters import audit, benchdb
from bench.tracker import TERMINAL

# A finished order's hold is committed or released by its inventory shard after the order's
# final move (the event that tells it follows that move): how long the audit waits for that.
_SETTLE_S = 30.0


async def before(dsn: str) -> frozenset[str]:
    """The SKUs whose bookkeeping is already broken before the run (each row as text): a
    stock row a run left unchanged is not that run's finding (`check`'s `preexisting`)."""

    def broken() -> frozenset[str]:
        with audit.connect(dsn) as conn:
            return frozenset(str(r) for r in audit.broken_stock(conn))

    return await asyncio.to_thread(broken)


async def check(
    dsn: str,
    since: float,
    prefix: str,
    preexisting: frozenset[str] = frozenset(),
    settle_s: float = _SETTLE_S,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Over every order of the run's customers (principals `<prefix>-*`, created since `since`,
    epoch seconds): SKUs whose reserved count is not the sum of their open holds or exceeds on
    hand (`broken_stock`: every SKU, but for a row exactly as it was before the run,
    `preexisting`), holds left on a finished order (`held_when_finished`), reservations HELD
    without their open hold or the reverse (`holds_out_of_step`), and orders stored and not
    terminal (`unfinished`: read afresh each time, so that an order the gateway stored after
    its phase had decided what was lost — a request the load generator had given up on —
    counts too), each a count of rows, the first rows found in `details`. While any is found
    it is checked again, for up to `settle_s`; what is left then is the finding."""
    when, like = datetime.fromtimestamp(since, UTC), prefix + "-%"
    async with await benchdb.connect(dsn) as conn:
        ids = await benchdb.order_ids(conn, when, like)
        started = time.monotonic()
        found = await _found(conn, dsn, ids, preexisting, when, like)
        while any(found.values()) and time.monotonic() - started < settle_s:
            await asyncio.sleep(poll_s)
            found = await _found(conn, dsn, ids, preexisting, when, like)
    rows = [r for found_rows in found.values() for r in found_rows]
    return {
        "orders": len(ids),
        "broken_stock_before": len(preexisting),
        **{name: len(found_rows) for name, found_rows in found.items()},
        "waited_s": round(time.monotonic() - started, 1),
        "details": [str(r) for r in rows[:10]],
    }


async def _found(
    conn: benchdb.Conn,
    dsn: str,
    ids: list[str],
    preexisting: frozenset[str],
    since: datetime,
    like: str,
) -> dict[str, list[audit.Row]]:
    """One round of the checks (`check`)."""
    found = await asyncio.to_thread(_checks, dsn, ids, preexisting)
    still_open = await benchdb.run_open_orders(conn, since, like, TERMINAL)
    found["unfinished"] = [{"order_id": oid, "status": status} for oid, status in still_open]
    return found


def _checks(dsn: str, ids: list[str], preexisting: frozenset[str]) -> dict[str, list[audit.Row]]:
    with audit.connect(dsn) as conn:
        return {
            "broken_stock": [r for r in audit.broken_stock(conn) if str(r) not in preexisting],
            "held_when_finished": audit.held_when_finished(conn, ids, TERMINAL),
            "holds_out_of_step": audit.holds_out_of_step(conn, ids),
        }
