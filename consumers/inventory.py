"""The inventory group: reserve all-or-nothing across shards (fixed shard order), cap open holds
per customer, release on decline/cancel/failure, commit on ship. Rules: `domain.inventory`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters import stock as sql
from adapters.uow import Tx, UnitOfWork
from consumers import routes
from consumers.base import PoisonMessage, Shards
from core.settings import Settings
from domain import inventory as rules
from domain.decision import Decision, OrderView
from domain.events import Envelope

CONSUMER = "inventory"


@dataclass
class _Outcome:
    """Record what the shards answered: RESERVED or REJECTED (with the reason)."""

    ok: dict[uuid.UUID, bool]
    capped: set[uuid.UUID]
    consumer: str = CONSUMER
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Outcome:
        self.decision = rules.outcomes(events, self.ok, self.capped)
        return self


class InventoryHandler:
    """The group's member hosted by an inventory shard: `uow` is the shard's, `shards` calls the
    hosting shard in process and the others through Ray."""

    def __init__(self, settings: Settings, uow: UnitOfWork, shards: Shards) -> None:
        self.settings = settings
        self._uow = uow
        self._shards = shards

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        work = routes.sort(CONSUMER, events)
        release = [e.order_id for e in work.get("release", [])]
        if work.get("reserve"):
            release += await self._reserve(self._uow, work["reserve"])
        await self._broadcast("release_batch", release)
        await self._broadcast("commit_batch", [e.order_id for e in work.get("commit", [])])

    async def _broadcast(self, method: str, order_ids: list[uuid.UUID]) -> None:
        if order_ids:
            n = self.settings.inventory_shards
            await asyncio.gather(*(self._shards.call(i, method, order_ids) for i in range(n)))

    async def _screen(
        self, uow: UnitOfWork, events: list[Envelope]
    ) -> tuple[list[Envelope], list[tuple[uuid.UUID, str]], dict[str, int]]:
        """The events not handled yet, their principals and those principals' open holds, read
        in one transaction; an order that does not exist is poison (checked before reserving,
        so nothing is held for a phantom order)."""
        async with uow.begin() as tx:
            new = await sql.unseen(tx.conn, CONSUMER, [e.event_id for e in events])
            events = [e for e in events if e.event_id in new]
            known = await sql.existing_orders(tx.conn, [e.order_id for e in events])
            unknown = [e for e in events if e.order_id not in known]
            if unknown:
                raise PoisonMessage(f"order {unknown[0].order_id} does not exist")
            principals = [(e.order_id, str(e.data.get("principal", ""))) for e in events]
            holds = await sql.open_holds(tx.conn, [p for _, p in principals])
        return events, principals, holds

    async def _reserve(self, uow: UnitOfWork, events: list[Envelope]) -> list[uuid.UUID]:
        """Reserve, then record outcomes; returns the orders whose holds must be released."""
        events, principals, holds = await self._screen(uow, events)
        capped = rules.over_hold_cap(principals, holds, self.settings.max_open_holds_per_customer)
        try:
            per_shard = rules.split_by_shard(events, self.settings.inventory_shards, capped)
        except rules.InvalidLines as exc:
            raise PoisonMessage(str(exc)) from exc
        shard_ids = sorted(per_shard)  # fixed order across shards
        answers = await asyncio.gather(
            *(self._shards.call(i, "reserve_batch", per_shard[i]) for i in shard_ids)
        )
        asked = (per_shard[i] for i in shard_ids)
        ok = rules.combine(events, capped, zip(asked, answers, strict=True))
        _, outcome = await uow.run(_Outcome(ok, capped), events)
        applied = {a.move.order_id for a in outcome if a.applied}
        # refused, or reserved for an order that was cancelled meanwhile: give the stock back
        return [oid for oid, good in ok.items() if not good or oid not in applied]
