"""Inventory shard actors: each owns the stock of the SKUs with `crc32(sku) % N == index`, and
hosts one member of the `inventory` consumer group (docs/adr/ADR-006): a batch's part for this
shard is handled in process, the other shards' parts through their actors.

State lives in memory for fast decisions and is persisted in the same Postgres transaction as
every change, so a restarted shard (max_restarts=-1) reloads exactly what was committed. The
rules are in `domain.inventory`; the SQL in `adapters.stock`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from actors.base import Inspectable, owned_shard, platform_actor, settled
from adapters import stock as sql
from adapters.pg import now, when_up
from adapters.uow import Tx
from consumers.base import Shards
from consumers.inventory import InventoryHandler
from consumers.loop import ConsumerLoop
from core import registry
from core.settings import get_settings
from domain import inventory as rules
from domain.decision import Decision, OrderView
from domain.errors import Conflict, NotFound
from domain.events import Envelope

_EXPIRY_SWEEP_S = 1.0
# how long an order must have held nothing before the sweep gives its stock back: the reserving
# member's own release comes milliseconds after its commit, the sweep only after it failed
_STRANDED_AFTER_S = 5.0

log = logging.getLogger(__name__)


@dataclass
class _Expiry:
    """The hold-expiry stage: cancel unpaid orders whose hold ran out."""

    expired: dict[uuid.UUID, str]  # order → its status when the sweep found it
    consumer: str | None = None
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Expiry:
        self.decision = rules.expire(orders, self.expired)
        return self


@platform_actor(max_concurrency=64)
class InventoryShard(Inspectable):
    async def __init__(self, index: int) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        self._index = index
        self._uow, self._owner_watch = await owned_shard(
            registry.inventory_shard(index), self._settings
        )
        self._lock = asyncio.Lock()  # one writer at a time keeps memory == Postgres
        self._stock: dict[str, rules.Stock] = {}
        self._unsure = False  # a transaction failed: memory reloads before the next change
        await when_up(self._reload, registry.inventory_shard(index))  # Postgres may be gone again
        self._sweep_error: str | None = None
        self._sweeper = asyncio.create_task(self._expire_loop())
        # last: the loop may hand over a batch at once, and the shard's methods need the above
        shards = Shards(self._settings, registry.inventory_shard, index, self)
        handler = InventoryHandler(self._settings, self._uow, shards)
        self._consumer = ConsumerLoop(registry.INVENTORY_GROUP, handler, self._settings)
        settled(self._settings)

    async def _reload(self) -> None:
        async with self._uow.begin() as tx:
            self._stock = self._mine(await sql.load_stock(tx.conn))

    def _mine(self, stock: dict[str, rules.Stock]) -> dict[str, rules.Stock]:
        n = self._settings.inventory_shards
        return {s: v for s, v in stock.items() if registry.shard_of(s, n) == self._index}

    async def _locked(self, tx: Tx) -> dict[str, rules.Stock]:
        """Lock the shard until `tx` ends; returns where to put the SKUs' new values, which
        memory takes only if `tx` commits. Everything here takes its connection first and the
        lock second, so the lock's holder never waits for a connection held by a waiter. Once
        per transaction (the lock is not reentrant). After a transaction that failed, memory is
        read again from Postgres first: a COMMIT whose answer was lost (the connection cut) may
        have committed what memory did not take."""
        await self._lock.acquire()
        changes: dict[str, rules.Stock] = {}

        def end(committed: bool) -> None:
            if committed:
                self._stock.update(changes)
            else:
                self._unsure = True
            self._lock.release()

        tx.after(end)  # before anything can fail: the lock is released whatever happens
        if self._unsure:
            self._stock = self._mine(await sql.load_stock(tx.conn))
            self._unsure = False
        return changes

    async def health(self) -> dict[str, Any]:
        """The consumer member's health (its status is this shard's) and the shard's share."""
        n = self._settings.inventory_shards
        health = {**self._consumer.health(), "shard": self._index, "of": n}
        if self._sweep_error is not None:  # holds neither expire nor come back meanwhile
            health.update(status="degraded", sweepError=self._sweep_error)
        return {"pid": os.getpid(), **health, "skus": len(self._stock)}

    async def snapshot(self, sku: str) -> dict[str, int] | None:
        """The in-memory view of one SKU (tests compare it with Postgres). After a transaction
        that failed, memory is read again first, as the next change would do."""
        if self._unsure:
            async with self._uow.begin() as tx:
                await self._locked(tx)
        entry = self._stock.get(sku)
        return None if entry is None else {"onHand": entry.on_hand, "reserved": entry.reserved}

    async def set_stock(self, sku: str, on_hand: int) -> dict[str, Any]:
        """Admin restock. Refuses to go below what is reserved."""
        async with self._uow.begin() as tx:
            changes = await self._locked(tx)
            if sku not in self._stock:
                self._stock = self._mine(await sql.load_stock(tx.conn))
            current = self._stock.get(sku)
            if current is None:
                raise NotFound(f"sku {sku} not found in the catalog")
            try:
                updated = rules.set_on_hand(current, on_hand)
            except ValueError as exc:
                raise Conflict(str(exc), {"reserved": current.reserved}) from None
            await sql.set_on_hand(tx.conn, sku, on_hand)
            changes[sku] = updated
        return {"sku": sku, "on_hand": updated.on_hand, "reserved": updated.reserved}

    async def reserve_batch(self, requests: list[rules.ReserveRequest]) -> list[bool]:
        """All-or-nothing per order (within this shard), in request order; idempotent per order."""
        async with self._uow.begin() as tx:
            return await self.reserve_in(tx, requests)

    async def reserve_in(self, tx: Tx, requests: list[rules.ReserveRequest]) -> list[bool]:
        """`reserve_batch` in the caller's transaction (the consumer member hosted here reserves
        in the transaction that records the outcomes): the shard stays locked until `tx` ends
        and its memory follows only if `tx` commits."""
        changes = await self._locked(tx)
        expires = now() + timedelta(seconds=self._settings.hold_ttl_s)
        ids = [r.order_id for r in requests]
        previous = await sql.reservation_states(tx.conn, ids, list(self._stock))
        out = rules.reserve(self._stock, requests, previous)
        tx.write(*sql.holding(out.rows, expires, out.delta))
        for sku, qty in out.delta.items():
            s = self._stock[sku]
            changes[sku] = rules.Stock(s.on_hand, s.reserved + qty)
        return out.results

    async def release_batch(
        self, order_ids: list[uuid.UUID], find_unknown: bool = False
    ) -> tuple[int, list[uuid.UUID]]:
        """Return held stock of these orders exactly once (HELD → RELEASED): the units given
        back and, with `find_unknown`, the orders that do not exist (the same statement)."""
        return await self._settle(order_ids, rules.RELEASED, find_unknown)

    async def commit_batch(
        self, order_ids: list[uuid.UUID], find_unknown: bool = False
    ) -> tuple[int, list[uuid.UUID]]:
        """Shipped: held stock leaves for good (HELD → COMMITTED, on-hand decremented): the
        units and, with `find_unknown`, the orders that do not exist (the same statement)."""
        return await self._settle(order_ids, rules.COMMITTED, find_unknown)

    async def _settle(
        self, order_ids: list[uuid.UUID], target: str, find_unknown: bool
    ) -> tuple[int, list[uuid.UUID]]:
        # (builtins only: a member of another version, during a rollout, unpickles the answer)
        if not order_ids:
            return 0, []
        async with self._uow.begin() as tx:
            changes = await self._locked(tx)
            closed = await sql.close_holds(
                tx.conn, order_ids, list(self._stock), target, find_unknown
            )
            delta = rules.settle(closed.rows, target)
            tx.write(sql.shifting(delta))
            for sku, (reserved, on_hand) in delta.items():
                s = self._stock[sku]
                changes[sku] = rules.Stock(s.on_hand + on_hand, s.reserved + reserved)
        return sum(qty for _, qty in closed.rows), sorted(closed.unknown)

    async def _expire_loop(self) -> None:
        """The sweeps, every `_EXPIRY_SWEEP_S`; one that fails is logged and shown in `health`
        until a run works (an idle consumer's cycle touches no Postgres: it would look up)."""
        while True:
            await asyncio.sleep(_EXPIRY_SWEEP_S)
            try:
                await self.expire_holds()
                await self.release_stranded()
            except Exception as exc:
                if self._sweep_error is None:
                    log.warning("shard %d: hold sweep failed: %r", self._index, exc)
                self._sweep_error = f"{type(exc).__name__}: {exc}"
            else:
                self._sweep_error = None

    async def expire_holds(self, as_of: datetime | None = None) -> int:
        """Cancel orders whose hold outlived HOLD_TTL_S without payment, and whose status did
        not change for as long (`stock.expired_holds`); stock comes back via the
        `order.cancelled` event (released once, by the inventory consumer)."""
        as_of = as_of or now()
        unchanged_since = as_of - timedelta(seconds=self._settings.hold_ttl_s)
        async with self._uow.begin() as tx:
            expired = await sql.expired_holds(tx.conn, as_of, list(self._stock), unchanged_since)
        if not expired:
            return 0
        result, _ = await self._uow.run(_Expiry(expired), order_ids=list(expired))
        return len(result.decision.moves)

    async def release_stranded(self, as_of: datetime | None = None) -> int:
        """Give back the stock still held for orders that hold none (rejected, declined,
        cancelled, refunded) and settled `_STRANDED_AFTER_S` before `as_of`, and commit what is
        still held for orders that shipped. The reserving member releases what it refused or
        what a cancel overtook right after its commit; if it stops in between (killed, Postgres
        gone), the claim keeps the redelivery from doing it, so this sweep does; a shipped
        order's commit is missing only when its event was dead-lettered (an unexpected error,
        retried `CONSUMER_MAX_RETRIES` times). Returns the units released or committed."""
        settled_before = (as_of or now()) - timedelta(seconds=_STRANDED_AFTER_S)
        statuses = [s.value for s in (*rules.HOLDS_NOTHING, *rules.HOLDS_SHIPPED)]
        async with self._uow.begin() as tx:
            found = await sql.stranded_holds(tx.conn, settled_before, list(self._stock), statuses)
        gone = {s.value for s in rules.HOLDS_SHIPPED}
        shipped = [oid for oid, status in found.items() if status in gone]
        stranded = [oid for oid, status in found.items() if status not in gone]
        committed = (await self.commit_batch(shipped))[0] if shipped else 0
        if committed:
            log.warning("shard %d committed %d unit(s) of shipped orders", self._index, committed)
        if not stranded:
            return committed
        units, _ = await self.release_batch(stranded)
        log.warning(  # an interrupted release, or the inventory group more than 5 s behind
            "shard %d released %d unit(s) still held for %d finished order(s)",
            self._index,
            units,
            len(stranded),
        )
        return units + committed
