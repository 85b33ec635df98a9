"""The shipping actor: creates shipments for paid orders and moves them along
CREATED → SHIPPED → DELIVERED (or FAILED → refund), emitting `shipping.updated` each time.

It runs the `shipping` consumer group itself (docs/adr/ADR-006): the group's only effect is this
actor's `create_batch`, and a bridge process in front of it cost an actor call and a second
parse of every event per batch. Timers are in memory (`actors.step_queue`: DELIVERED steps
wait up to 250 ms to go in fewer, larger batches) and rebuilt from the `shipments` table on
restart, so a killed actor resumes every shipment where Postgres says it is, each step due at
what is left of its delay (and its consumer resumes from the last committed offset). The rules
are in `domain.shipping`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from actors.base import Inspectable, open_uow, platform_actor, settled
from actors.step_queue import Entry, StepQueue
from adapters import shipments as sql
from adapters.pg import when_up
from adapters.redis_clients import async_client
from adapters.redis_clients import flags as redis_flags
from adapters.uow import Tx
from consumers import routes
from consumers.base import require_orders
from consumers.loop import ConsumerLoop
from consumers.transient import is_transient
from core.registry import SHIPPING_GROUP
from core.settings import get_settings
from domain import shipping as rules
from domain.decision import Decision, OrderView
from domain.events import Envelope

log = logging.getLogger(__name__)
CONSUMER = "shipping"
FAIL_KEY = "fault:shipping-fail:{}"
HOLD_KEY = "fault:shipping-hold:{}"
_HOLD_RECHECK_S = 0.2
_RETRY_S = 1.0
_IDLE_S = 1.0
_STEP_BATCH_MAX = 2000
_DELIVER_SLACK_S = 0.25  # how long a DELIVERED step may wait for others to join its batch


@dataclass
class _Create:
    fail: dict[uuid.UUID, bool]
    consumer: str = CONSUMER
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)
    created: rules.Created = field(default_factory=rules.Created)
    claimed: set[uuid.UUID] = field(default_factory=set)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Create:
        require_orders(events, orders)
        self.claimed = {e.order_id for e in events}
        self.created = rules.create(
            (orders.get(e.order_id), self.fail.get(e.order_id, False)) for e in events
        )
        self.decision = self.created.decision
        tx.write(sql.creating(self.created.shipments))
        return self


@dataclass
class _Advance:
    steps: dict[uuid.UUID, str]
    redis: aioredis.Redis
    consumer: str | None = None
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)
    advanced: rules.Advanced = field(default_factory=rules.Advanced)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Advance:
        shipments = await sql.lock(tx.conn, list(self.steps))
        customers = sorted({o.customer_id for o in orders.values()})
        flags = await redis_flags(self.redis, [HOLD_KEY.format(c) for c in customers], "holds")
        held = {c for c, flag in zip(customers, flags, strict=True) if flag}
        self.advanced = rules.advance(self.steps, shipments, orders, held)
        self.decision = self.advanced.decision
        tx.write(sql.moving(self.advanced.updates))
        return self


class _Group:
    """The `shipping` group's handler: paid orders go straight to `create_batch`."""

    def __init__(self, create: Callable[[list[Envelope]], Awaitable[None]]) -> None:
        self._create = create

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None:
        batch = routes.sort(SHIPPING_GROUP, events).get("create", [])
        if batch:
            await self._create(batch)


@dataclass
class _Split:
    """A failing timer batch's split: transactions left, the last error."""

    budget: int
    last: Exception | None = None


@platform_actor(max_concurrency=64)
class ShippingActor(Inspectable):
    async def __init__(self) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        self._uow = await open_uow(self._settings, 4, "shipping")
        self._redis = async_client(self._settings.redis_url)
        self._steps = StepQueue(_DELIVER_SLACK_S, _STEP_BATCH_MAX)
        self._wake = asyncio.Event()
        # (step, order) → that step's last failure, until that order's step works
        self._failing: dict[tuple[str, uuid.UUID], str] = {}
        # timers rebuild from the shipments with a step left (Postgres may be gone again)
        await when_up(self._resume, "shipping")
        self._ticker = asyncio.create_task(self._tick_loop())
        # last: the loop may hand over a batch at once, and `create_batch` needs the above
        self._consumer = ConsumerLoop(SHIPPING_GROUP, _Group(self.create_batch), self._settings)
        settled(self._settings)

    async def health(self) -> dict[str, Any]:
        """The consumer loop's health (its status is this actor's) and the shipments whose
        next step is waiting."""
        health = {**self._consumer.health(), "pending": len(self._steps)}
        if self._failing:  # the timers' steps fail (an idle consumer looks up)
            health.update(status="degraded", stepError=self._failing_summary())
        return {"pid": os.getpid(), **health}

    async def create_batch(self, events: list[Envelope]) -> None:
        """Handle `payment.authorized`: one shipment per paid order, `shipping.updated` CREATED."""
        keys = [FAIL_KEY.format(e.data.get("customerId", "")) for e in events]
        flags = await redis_flags(self._redis, keys, "shipping-fail faults")
        fail = {e.order_id: bool(f) for e, f in zip(events, flags, strict=True)}
        result, _ = await self._uow.run(_Create(fail), events)
        when = time.monotonic() + self._settings.ship_delay_s
        for s in result.created.shipments:
            self._schedule(when, rules.SHIPPED, s.order_id)
        again = [e.order_id for e in events if e.order_id not in result.claimed]
        if again:
            await self._resume(again)

    async def _resume(self, order_ids: list[uuid.UUID] | None = None) -> None:
        """Schedule the next step of these orders' shipments (None: of every shipment with a
        step left, at start), at what is left of its delay since the shipment's last status
        change (Postgres's clock), so a restart neither hurries nor delays it. For events
        claimed before: a commit whose answer was lost (the
        connection cut after COMMIT) created a shipment that nothing scheduled; the queue keeps
        one entry per step and order."""
        async with self._uow.begin() as tx:
            pending = await sql.in_flight(tx.conn, order_ids)
        now, cfg = time.monotonic(), self._settings
        for order_id, status, age in pending:
            step = rules.next_step(status)
            if step is not None:
                left = rules.left_s(step, age, cfg.ship_delay_s, cfg.deliver_delay_s)
                self._schedule(now + left, step, order_id)

    def _schedule(self, when: float, step: str, order_id: uuid.UUID) -> None:
        self._steps.add(when, step, order_id)
        self._wake.set()

    async def _tick_loop(self) -> None:
        while True:
            # sleep until a step must go (`StepQueue.wait_s`); a step scheduled meanwhile wakes
            # the loop to look again, and only a step that must go now starts a transaction
            wait = self._steps.wait_s(time.monotonic())
            wait = _IDLE_S if wait is None else wait
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
                continue
            for batch in self._steps.take(time.monotonic()):  # SHIPPED first, then DELIVERED
                if batch:
                    await self._advance_or_retry(batch)

    def _failing_summary(self) -> str:
        """Per step: how many orders' steps fail, and one of their errors."""
        by_step: dict[str, list[str]] = {}
        for (step, _), error in self._failing.items():
            by_step.setdefault(step, []).append(error)
        return "; ".join(
            f"{step}: {len(errors)} failing, {errors[-1]}"
            for step, errors in sorted(by_step.items())
        )

    async def _advance_or_retry(self, batch: list[Entry]) -> None:
        """One batch of one step (`StepQueue.take`); what failed goes back to the queue and is
        reported (`stepError`) until that order's step works."""
        # 2·log2(n) + 1 transactions find one failing order among n; an error every order
        # hits (not the infrastructure's) costs no more than that per retry
        failed = await self._isolating(batch, _Split(2 * len(batch).bit_length() + 1))
        for _, step, oid in batch:
            self._failing.pop((step, oid), None)
        for (_, step, oid), exc in failed:
            self._failing[(step, oid)] = f"{type(exc).__name__}: {exc}"
            self._schedule(time.monotonic() + _RETRY_S, step, oid)
        if failed:
            log.warning("%d shipment step(s) failed, retrying: %s", len(failed), failed[-1][1])

    async def _isolating(self, batch: list[Entry], split: _Split) -> list[tuple[Entry, Exception]]:
        """Advance `batch` (one transaction); the entries that failed, each with its error. An
        error of the infrastructure (Postgres restarting) fails the batch and what is left of
        its split whole; any other may be one order's own, so the batch is split in halves
        (each its own transaction) until the orders that fail are alone and the others go on,
        within the split's budget of transactions."""
        if split.budget <= 0 and split.last is not None:
            return [(entry, split.last) for entry in batch]
        split.budget -= 1
        try:
            await self._advance({oid: step for _, step, oid in batch})
            return []
        except Exception as exc:
            split.last = exc
            if is_transient(exc):
                split.budget = 0  # an outage: the rest of the split waits for it
            if len(batch) == 1 or split.budget <= 0:
                return [(entry, exc) for entry in batch]
        half = len(batch) // 2
        return await self._isolating(batch[:half], split) + await self._isolating(
            batch[half:], split
        )

    async def _advance(self, steps: dict[uuid.UUID, str]) -> None:
        result, _ = await self._uow.run(_Advance(steps, self._redis), order_ids=list(steps))
        done = result.advanced
        when = time.monotonic() + self._settings.deliver_delay_s
        for oid in done.follow:
            self._schedule(when, rules.DELIVERED, oid)
        for step, oid in done.held:
            self._schedule(time.monotonic() + _HOLD_RECHECK_S, step, oid)
