"""The oversell check over a whole `make bench` run: every phase sends orders for the scarce
SKUs (the warm-up, the main run, the step phase, the holds and the load points; the accept-
capacity phase does not), and only the main run's are audited right after it
(`bench.stock.audit`). Stock is read once before the first phase; the units the benchmark
itself adds or takes away afterwards (`bench.stock.make_scarce` before the main run) are
counted as restocked. At the end, the units shipped by every order of the run, per SKU, from
the orders' own items (principals `<tag>-*`, whether their 202 was seen or not), must not
exceed what was available at the start plus what was restocked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters import benchdb
from bench.workload import SCARCE_SKUS


@dataclass
class Ledger:
    """What the run's orders may ship, per SKU."""

    start: dict[str, tuple[int, int]]  # sku → (on_hand, reserved) before the first phase
    restocked: dict[str, int] = field(default_factory=dict)  # sku → on-hand units added since

    def restock(self, added: dict[str, int]) -> None:
        """Count on-hand units the benchmark added (negative: took away) to each SKU."""
        for sku, units in added.items():
            self.restocked[sku] = self.restocked.get(sku, 0) + units

    def available(self, sku: str) -> int:
        """Units of `sku` the run's orders may ship: available at the start, plus restocked."""
        on_hand, reserved = self.start[sku]
        return on_hand - reserved + self.restocked.get(sku, 0)


async def begin(dsn: str) -> Ledger:
    """The stock of every SKU before the run's first order."""
    async with await benchdb.connect(dsn) as conn:
        return Ledger(await benchdb.inventory(conn))


async def check(dsn: str, ledger: Ledger, since: float, prefix: str) -> dict[str, Any]:
    """`oversold_all_phases` (units shipped beyond `ledger.available`, summed over the SKUs)
    and its details in `stock_all_phases`, over the orders of principals `<prefix>-*` created
    since `since` (epoch seconds); an `error` there when Postgres could not be read (and
    `oversold_all_phases` None)."""
    try:
        async with await benchdb.connect(dsn) as conn:
            shipped = await benchdb.run_shipped_units(
                conn, datetime.fromtimestamp(since, UTC), prefix + "-%"
            )
    except Exception as exc:  # a finding of its own, not the loss of the run's results
        return {
            "oversold_all_phases": None,
            "stock_all_phases": {"error": f"{type(exc).__name__}: {exc}"},
        }
    over = {
        sku: units - ledger.available(sku)
        for sku, units in shipped.items()
        if sku in ledger.start and units > ledger.available(sku)
    }
    scarce = {
        sku: {
            "availableAtStart": ledger.start[sku][0] - ledger.start[sku][1],
            "restockedUnits": ledger.restocked.get(sku, 0),
            "shippedUnits": shipped.get(sku, 0),
        }
        for sku in SCARCE_SKUS
        if sku in ledger.start
    }
    return {
        "oversold_all_phases": sum(over.values()),
        "stock_all_phases": {
            "oversoldBySku": over,
            "scarceSkus": scarce,
            "shippedUnits": sum(shipped.values()),
        },
    }
