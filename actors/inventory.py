"""Inventory shard actors: each owns the stock of the SKUs with `crc32(sku) % N == index`.

State lives in memory for fast decisions and is persisted in the same Postgres transaction as
every change, so a restarted shard (max_restarts=-1) reloads exactly what was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

from adapters.pg import (
    Row,
    apply_transitions,
    claim_ownership,
    insert_outbox,
    insert_values,
    lock_orders,
    now,
    open_pool,
    update_from_values,
    watch_ownership,
)
from adapters.status import StatusPublisher
from core import registry
from core.priority import renice_process
from core.settings import get_settings
from domain.errors import Conflict, NotFound
from domain.events import new_event
from domain.model import OrderStatus

log = logging.getLogger(__name__)
_EXPIRY_SWEEP_S = 1.0
# order, customer, principal (who placed it: the hold cap counts per principal), [(sku, qty)]
ReserveRequest = tuple[uuid.UUID, str, str, list[tuple[str, int]]]


async def _shift_stock(conn: Any, shifts: list[tuple[str, int, int]]) -> None:
    """Add `(sku, to reserved, to on-hand)` to each SKU's row, one statement for all SKUs."""
    await update_from_values(
        conn,
        "UPDATE inventory i SET reserved = i.reserved + v.reserved, "
        "on_hand = i.on_hand + v.on_hand, updated_at = now()",
        "(%s::text, %s::int, %s::int)",
        "sku, reserved, on_hand",
        "i.sku = v.sku",
        shifts,
    )


@registry.platform_actor(max_concurrency=64)
class InventoryShard:
    async def __init__(self, index: int) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        key = f"inventory-shard-{index}"
        renice_process(self._settings.pipeline_niceness, key)
        self._index = index
        # single owner, also across clusters: held while this process lives, and watched (a
        # Postgres restart drops the lock: the process then exits and its restart claims it)
        self._owner = await claim_ownership(self._settings.database_url, key)
        self._owner_watch = asyncio.create_task(watch_ownership(self._owner, key))
        self._pool = await open_pool(self._settings.database_url, 4, f"inventory-{index}")
        self._status = StatusPublisher(self._settings.redis_url)
        self._lock = asyncio.Lock()  # one writer at a time keeps memory == Postgres
        self._stock: dict[str, list[int]] = {}
        await self._reload()
        self._sweeper = asyncio.create_task(self._expire_loop())

    async def _reload(self) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT sku, on_hand, reserved FROM inventory")
            rows = await cur.fetchall()
        n = self._settings.inventory_shards
        self._stock = {
            r["sku"]: [r["on_hand"], r["reserved"]]
            for r in rows
            if registry.shard_of(r["sku"], n) == self._index
        }

    async def health(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "status": "up", "shard": self._index, "skus": len(self._stock)}

    async def snapshot(self, sku: str) -> dict[str, int] | None:
        """The in-memory view of one SKU (tests compare it with Postgres)."""
        entry = self._stock.get(sku)
        return None if entry is None else {"onHand": entry[0], "reserved": entry[1]}

    async def set_stock(self, sku: str, on_hand: int) -> Row:
        """Admin restock. Refuses to go below what is reserved."""
        async with self._lock:
            entry = self._stock.get(sku)
            if entry is None:
                await self._reload()
                entry = self._stock.get(sku)
            if entry is None:
                raise NotFound(f"sku {sku} not found in the catalog")
            if on_hand < entry[1]:
                raise Conflict(
                    f"onHand {on_hand} is below the reserved {entry[1]} units",
                    {"reserved": entry[1]},
                )
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE inventory SET on_hand = %s, updated_at = now() WHERE sku = %s",
                    (on_hand, sku),
                )
            entry[0] = on_hand
            return {"sku": sku, "on_hand": entry[0], "reserved": entry[1]}

    async def reserve_batch(self, requests: list[ReserveRequest]) -> list[bool]:
        """All-or-nothing per order (within this shard), in request order; idempotent per order."""
        async with self._lock:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT order_id, state FROM reservations WHERE order_id = ANY(%s) "
                    "AND sku = ANY(%s)",
                    ([r[0] for r in requests], list(self._stock)),
                )
                previous: dict[uuid.UUID, set[str]] = {}
                for row in await cur.fetchall():
                    previous.setdefault(row["order_id"], set()).add(row["state"])
                delta: dict[str, int] = {}
                rows: list[tuple[uuid.UUID, str, str, str, int, Any]] = []
                results: list[bool] = []
                expires = now() + timedelta(seconds=self._settings.hold_ttl_s)
                for order_id, customer, principal, items in requests:
                    if order_id in previous:  # replayed: answer what was decided before
                        results.append(previous[order_id] <= {"HELD", "COMMITTED"})
                        continue
                    ok = all(
                        sku in self._stock
                        and self._stock[sku][0] - self._stock[sku][1] - delta.get(sku, 0) >= qty
                        for sku, qty in items
                    )
                    results.append(ok)
                    if ok:
                        previous[order_id] = {"HELD"}
                        for sku, qty in items:
                            delta[sku] = delta.get(sku, 0) + qty
                            rows.append((order_id, sku, customer, principal, qty, expires))
                await insert_values(
                    conn,
                    "INSERT INTO reservations (order_id, sku, customer_id, principal, qty, state, "
                    "expires_at)",
                    "(%s, %s, %s, %s, %s, 'HELD', %s)",
                    rows,
                )
                await _shift_stock(conn, [(s, q, 0) for s, q in delta.items()])
            for sku, qty in delta.items():  # committed: now memory may follow
                self._stock[sku][1] += qty
            return results

    async def release_batch(self, order_ids: list[uuid.UUID]) -> int:
        """Return held stock of these orders exactly once (HELD → RELEASED)."""
        return await self._settle(order_ids, "RELEASED")

    async def commit_batch(self, order_ids: list[uuid.UUID]) -> int:
        """Shipped: held stock leaves for good (HELD → COMMITTED, on-hand decremented)."""
        return await self._settle(order_ids, "COMMITTED")

    async def _settle(self, order_ids: list[uuid.UUID], target: str) -> int:
        if not order_ids:
            return 0
        async with self._lock:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE reservations SET state = %s, updated_at = now() "
                    "WHERE order_id = ANY(%s) AND sku = ANY(%s) AND state = 'HELD' "
                    "RETURNING sku, qty",
                    (target, order_ids, list(self._stock)),
                )
                delta: dict[str, int] = {}
                for row in await cur.fetchall():
                    delta[row["sku"]] = delta.get(row["sku"], 0) + row["qty"]
                on_hand_factor = 1 if target == "COMMITTED" else 0
                await _shift_stock(conn, [(s, -q, -q * on_hand_factor) for s, q in delta.items()])
            for sku, qty in delta.items():
                self._stock[sku][1] -= qty
                self._stock[sku][0] -= qty * on_hand_factor
            return sum(delta.values())

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(_EXPIRY_SWEEP_S)
            with contextlib.suppress(Exception):
                await self.expire_holds()

    async def expire_holds(self, as_of: datetime | None = None) -> int:
        """Cancel orders whose hold outlived HOLD_TTL_S without payment; stock comes back via
        the `order.cancelled` event (released once, by the inventory consumer)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT r.order_id FROM reservations r JOIN orders o ON o.id = r.order_id "
                "WHERE r.state = 'HELD' AND r.expires_at < %s AND r.sku = ANY(%s) "
                "AND o.status IN ('PENDING', 'RESERVED') LIMIT 500",
                (as_of or now(), list(self._stock)),
            )
            expired = [r["order_id"] for r in await cur.fetchall()]
            if not expired:
                return 0
            locked = await lock_orders(conn, expired)
            # re-check under the lock: a payment may have landed since the query
            unpaid = {OrderStatus.PENDING.value, OrderStatus.RESERVED.value}
            expired = [oid for oid in expired if locked.get(oid, {}).get("status") in unpaid]
            reason = "reservation hold expired before payment"
            done = await apply_transitions(
                conn,
                locked,
                [
                    (oid, OrderStatus.CANCELLED, "HoldExpired", {"reason": reason})
                    for oid in expired
                ],
            )
            await insert_outbox(
                conn,
                [
                    new_event(
                        "OrderCancelled",
                        t.order_id,
                        reason=reason,
                        customerId=t.row["customer_id"] if t.row else "",
                        previous=t.previous.value if t.previous else None,
                    )
                    for t in done
                    if t.applied
                ],
            )
        await self._status.publish(done)
        return sum(t.applied for t in done)
