"""The inventory group: reserve all-or-nothing across shards (the other shards first, then the
hosting one for the orders they did not refuse), cap open holds per customer, release on
decline/cancel/failure (before the batch's reserves), commit on ship. An event of an order
that does not exist is poison, whichever of these it asks for. Rules: `domain.inventory`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters import stock as sql
from adapters.uow import Tx, UnitOfWork
from consumers import routes
from consumers.base import PoisonMessage, Shards, require_orders
from core.settings import Settings
from domain import inventory as rules
from domain.decision import Decision, OrderView
from domain.events import Envelope

CONSUMER = "inventory"


@dataclass
class _Reserve:
    """Reserve a batch of new orders and record RESERVED or REJECTED, in one transaction: the
    orders are claimed and locked, their principals' open holds read, the hosting shard's part
    reserved in this transaction (the other shards' parts by their actors, each in its own),
    and the outcomes written with the reservations."""

    handler: InventoryHandler
    consumer: str = CONSUMER
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)
    ok: dict[uuid.UUID, bool] = field(default_factory=dict)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Reserve:
        require_orders(events, orders)  # before anything is held for a phantom order
        events = rules.still_pending(events, orders)  # the orders are locked: no cancel races
        if not events:  # every one of them handled before (a redelivery) or cancelled
            return self
        settings = self.handler.settings
        principals = [(e.order_id, str(e.data.get("principal", ""))) for e in events]
        holds = await sql.open_holds(
            tx.conn, [p for _, p in principals], [o for o, _ in principals]
        )
        capped = rules.over_hold_cap(principals, holds, settings.max_open_holds_per_customer)
        try:
            per_shard = rules.split_by_shard(events, settings.inventory_shards, capped)
        except rules.InvalidLines as exc:
            raise PoisonMessage(str(exc)) from exc
        answers = await self.handler.reserve(tx, per_shard)
        ok = rules.combine(events, capped, ((per_shard[i], answers[i]) for i in sorted(per_shard)))
        self.ok = ok
        self.decision = rules.outcomes(events, ok, capped)
        return self


class InventoryHandler:
    """The group's member hosted by an inventory shard: `uow` is the shard's, `shards` calls
    the hosting shard in process and the others through Ray."""

    def __init__(self, settings: Settings, uow: UnitOfWork, shards: Shards) -> None:
        self.settings = settings
        self._uow = uow
        self._shards = shards

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        work = routes.sort(CONSUMER, events)
        # the batch's releases (a decline, a cancel, a failed shipment) before its reserves: the
        # stock they give back is there for the new orders of the same fetch. (An order's own
        # cancel and its reserve in one batch: the reserve skips the cancelled order.)
        releases, commits = work.get("release", []), work.get("commit", [])
        unknown = await self._close("release_batch", releases)
        if work.get("reserve"):
            result, outcome = await self._uow.run(_Reserve(self), work["reserve"])
            applied = {a.move.order_id for a in outcome if a.applied}
            # refused, or reserved for an order that was cancelled meanwhile: give it back
            back = [oid for oid, good in result.ok.items() if not good or oid not in applied]
            await self._broadcast("release_batch", back)
        unknown |= await self._close("commit_batch", commits)
        # last: a release or commit of an order that does not exist is poison; the rest of the
        # batch is done by then, each effect once (a hold closes HELD → RELEASED or COMMITTED
        # once, a reserve is claimed), so the loop's one-by-one rerun changes nothing of theirs
        require_orders(releases + commits, {e.order_id for e in releases + commits} - unknown)

    async def reserve(
        self, tx: Tx, per_shard: dict[int, list[rules.ReserveRequest]]
    ) -> dict[int, list[bool]]:
        """Each shard's answers. The other shards first (a shard holds its lock until its
        transaction ends, so no shard waits for another while holding its own); then this
        member's shard, in `tx`."""
        here = self._shards.index
        others = [i for i in sorted(per_shard) if i != here]
        answers = await asyncio.gather(
            *(self._shards.call(i, "reserve_batch", per_shard[i]) for i in others)
        )
        out = dict(zip(others, answers, strict=True))
        if here in per_shard:
            out[here] = await self._reserve_here(tx, per_shard[here], out, per_shard)
        return out

    async def _reserve_here(
        self,
        tx: Tx,
        mine: list[rules.ReserveRequest],
        answered: dict[int, list[bool]],
        per_shard: dict[int, list[rules.ReserveRequest]],
    ) -> list[bool]:
        """This shard's answers for `mine`: an order another shard refused is not asked for
        (all or nothing: it is REJECTED anyway), so its stock here stays free for the batch's
        later orders instead of being held, then given back after the commit."""
        refused = {
            req.order_id
            for i, results in answered.items()
            for req, good in zip(per_shard[i], results, strict=True)
            if not good
        }
        asked = [req for req in mine if req.order_id not in refused]
        got = await self._shards.call(self._shards.index, "reserve_in", tx, asked) if asked else []
        by_order = dict(zip((req.order_id for req in asked), got, strict=True))
        return [by_order.get(req.order_id, False) for req in mine]

    async def _close(self, method: str, events: list[Envelope]) -> set[uuid.UUID]:
        """`method` (`release_batch` or `commit_batch`) of these events' orders on every shard;
        returns the orders that do not exist, which the hosting shard finds in its statement
        that closes the holds. The other shards do not look again, and are called as before: a
        shard of the previous version still answers them during a rollout."""
        if not events:
            return set()
        order_ids, here = [e.order_id for e in events], self._shards.index
        others = range(self.settings.inventory_shards)
        (_, unknown), *_ = await asyncio.gather(
            self._shards.call(here, method, order_ids, True),
            *(self._shards.call(i, method, order_ids) for i in others if i != here),
        )
        return set(unknown)

    async def _broadcast(self, method: str, order_ids: list[uuid.UUID]) -> None:
        if order_ids:
            n = self.settings.inventory_shards
            await asyncio.gather(*(self._shards.call(i, method, order_ids) for i in range(n)))
