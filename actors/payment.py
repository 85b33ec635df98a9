"""Payment shard actors: each owns the ledger of the customers with `crc32(customer) % N`, and
hosts one member of the `payment` consumer group (docs/adr/ADR-006): a batch's part for this
shard is handled in process, the other shards' parts through their actors.

At most one charge per order: the `payments` row (primary key = order id) is written in the
same transaction as the order's move, the dedupe row and the outbox event (`adapters.uow`).
The rules are in `domain.payment`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import pybreaker
from redis.exceptions import RedisError

from actors.base import Inspectable, owned_shard, platform_actor, settled
from adapters import payments as sql
from adapters.pg import now, when_up
from adapters.provider import (
    FAIL_COUNTER_KEY,
    FAULT_KEY,
    STATE_KEY,
    guarded_call,
    inline_ok,
    make_breaker,
)
from adapters.redis_clients import async_client
from adapters.uow import Tx
from consumers.base import PoisonMessage, Shards, require_orders
from consumers.loop import ConsumerLoop
from consumers.payment import PaymentHandler
from core import registry
from core.metrics import Metrics
from core.settings import get_settings
from domain import payment as rules
from domain.decision import Decision, OrderView
from domain.errors import OrderError
from domain.events import Envelope
from domain.sharding import shard_of

CONSUMER = "payment"
# the overdue sweep (`PaymentShard.settle_overdue`): how often, and how long after the order's
# end its settling event may still come the normal way (a busy group is seconds behind)
_OVERDUE_SWEEP_S = 10.0
_OVERDUE_AFTER_S = 60.0
_OVERDUE = ((rules.REFUNDED, ("CANCELLED", "REFUNDED")), (rules.CAPTURED, ("DELIVERED",)))
_StageT = TypeVar("_StageT", "_Authorize", "_Settle")
log = logging.getLogger(__name__)


@dataclass
class _Authorize:
    """Charge reserved orders once each, or decline them."""

    shard: PaymentShard
    consumer: str = CONSUMER
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)
    outstanding: dict[str, Decimal] = field(default_factory=dict)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Authorize:
        require_orders(events, orders)
        shard = self.shard
        decided, self.outstanding = rules.charges(
            (orders.get(e.order_id) for e in events), shard.outstanding, shard.limit
        )
        approved = [str(c.order.order_id) for c in decided if c.approved]
        refs = await shard.provider(approved)
        self.decision, rows = rules.charge_outcomes(decided, refs)
        tx.write(sql.recording(rows))
        return self


@dataclass
class _Settle:
    """Capture (delivered) or refund (cancelled, shipment failed) an authorization once. An
    event whose order does not exist is poison: the statement that settles finds it, and the
    batch's transaction (its claims too) is rolled back before anything is committed."""

    target: str
    consumer: str | None  # None: the overdue sweep's, which settles `order_ids`, no events
    order_ids: list[uuid.UUID] = field(default_factory=list)
    locks_orders: bool = False
    decision: Decision = field(default_factory=Decision)
    settled: list[tuple[uuid.UUID, str, Decimal]] = field(default_factory=list)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Settle:
        ids = [e.order_id for e in events] or self.order_ids
        done = await sql.settle(tx.conn, ids, self.target)
        require_orders(events, {e.order_id for e in events} - done.unknown)
        self.settled = done.settled
        if self.target == rules.REFUNDED:
            self.decision.events += rules.refunds(self.settled)
        return self


@platform_actor(max_concurrency=64)
class PaymentShard(Inspectable):
    async def __init__(self, index: int) -> None:  # type: ignore[misc]
        settings = get_settings()
        self._index = index
        self._shards = settings.payment_shards
        self._uow, self._owner_watch = await owned_shard(registry.payment_shard(index), settings)
        self._redis = async_client(settings.redis_url)
        self._breaker_seen = "unknown"  # the circuit's state at the last batch's read
        self._breaker, self._storage = make_breaker(
            settings.redis_url, settings.breaker_fail_max, settings.breaker_reset_s
        )
        self._metrics = Metrics()
        self._lock = asyncio.Lock()  # one writer at a time keeps memory == Postgres
        self.limit = Decimal(str(settings.credit_limit))
        self._unsure = True  # memory is read from Postgres before the first batch
        self._reloads = 0  # how often memory was read again (health)
        await when_up(self._reload_if_unsure, registry.payment_shard(index))
        # last: the loop may hand over a batch at once, and the shard's methods need the above
        shards = Shards(settings, registry.payment_shard, index, self)
        handler = PaymentHandler(settings, shards)
        self._consumer = ConsumerLoop(registry.PAYMENT_GROUP, handler, settings)
        self._sweep_error: str | None = None
        self._sweep = asyncio.create_task(self._overdue_loop())
        settled(settings)

    async def health(self) -> dict[str, Any]:
        """The consumer member's health (its status is this shard's) and the shard's share."""
        return {
            "pid": os.getpid(),
            **self._consumer.health(),
            "shard": self._index,
            "of": self._shards,
            "breaker": self._breaker_seen,
            "customers": len(self.outstanding),
            "reloads": self._reloads,
            # the overdue sweep failing: dead-lettered settlements stay in the exposure
            **(
                {"status": "degraded", "sweepError": self._sweep_error} if self._sweep_error else {}
            ),
        }

    async def exposure(self, customer: str) -> str:
        """The in-memory credit exposure of one customer (tests compare it with Postgres)."""
        return str(self.outstanding.get(customer, Decimal(0)))

    async def provider(self, order_ids: list[str]) -> list[str]:
        """The provider's references for approved orders, through the shared breaker. The fault
        flag, the circuit's state and its failure count come in one asynchronous round trip; a
        closed circuit with no failures calls on the event loop, answered from that read
        (`SnapshotRedisStorage`). Otherwise pybreaker reads and writes Redis with its blocking
        client, in a thread, off the event loop."""
        try:
            read = await self._redis.mget(FAULT_KEY, STATE_KEY, FAIL_COUNTER_KEY)
        except RedisError as exc:  # the breaker falls back to closed; no fault can be read
            log.warning("breaker state unread, Redis unavailable: %s", type(exc).__name__)
            self._saw_breaker("unknown")
            refs = await asyncio.to_thread(guarded_call, self._breaker, False, order_ids)
        else:
            flag, state, failures = cast(list[str | None], read)  # the client decodes them
            fault, count = flag == "down", int(failures or 0)
            self._saw_breaker(state or pybreaker.STATE_CLOSED)
            if inline_ok(fault, state, count):
                with self._storage.seen(pybreaker.STATE_CLOSED, count):
                    refs = guarded_call(self._breaker, fault, order_ids)
            else:
                refs = await asyncio.to_thread(guarded_call, self._breaker, fault, order_ids)
        # the call went through: the circuit is closed now (a half-open probe closed it), and
        # the gauge must not keep the `open` read before the call until the next batch. No
        # order to authorize: no call went through, and the state read from Redis stands.
        if order_ids:
            self._saw_breaker(pybreaker.STATE_CLOSED)
        return refs

    def _saw_breaker(self, state: str) -> None:
        self._breaker_seen = state
        self._metrics.breaker_state(str(self._index), state)

    async def authorize_batch(self, events: list[Envelope]) -> None:
        """Handle `inventory.reserved`: charge once per order, or decline; emit the outcome.

        Raises `Unavailable` (nothing committed) while the provider's circuit is open, so the
        consumer retries the batch later and in-flight orders resume when it closes.
        """
        async with self._lock:
            result = await self._run(_Authorize(self), events)
            self.outstanding = result.outstanding

    async def refund_batch(self, events: list[Envelope]) -> None:
        """Handle `order.cancelled` and failed shipments: refund an authorized charge once."""
        await self._settle(events, rules.REFUNDED)

    async def capture_batch(self, events: list[Envelope]) -> None:
        """Handle delivery: the authorization is captured and leaves the credit exposure."""
        await self._settle(events, rules.CAPTURED)

    async def _settle(
        self, events: list[Envelope], target: str, order_ids: list[uuid.UUID] | None = None
    ) -> int:
        consumer = f"{CONSUMER}-{target.lower()}" if order_ids is None else None
        async with self._lock:
            result = await self._run(_Settle(target, consumer, order_ids or []), events)
            released = [(customer, amount) for _, customer, amount in result.settled]
            self.outstanding = rules.settled(self.outstanding, released)
        return len(result.settled)

    async def settle_overdue(self, as_of: datetime | None = None) -> int:
        """Refund or capture this shard's authorizations still open `_OVERDUE_AFTER_S` after
        their order was cancelled, refunded or delivered: the event that settles one was
        dead-lettered (an unexpected error, retried `CONSUMER_MAX_RETRIES` times), and its
        amount stayed in the customer's exposure, declining later orders for good. A settlement
        happens once (AUTHORIZED is its guard): the event, replayed later, finds it done."""
        before = (as_of or now()) - timedelta(seconds=_OVERDUE_AFTER_S)
        async with self._uow.begin() as tx:
            rows = await sql.overdue(tx.conn, before, [s for _, due in _OVERDUE for s in due])
        mine = [(o, s) for o, c, s in rows if shard_of(c, self._shards) == self._index]
        done = 0
        for target, statuses in _OVERDUE:
            ids = [oid for oid, status in mine if status in statuses]
            if ids:
                done += await self._settle([], target, ids)
        if done:
            log.warning("payment shard %d settled %d overdue authorization(s)", self._index, done)
        return done

    async def _overdue_loop(self) -> None:
        while True:
            await asyncio.sleep(_OVERDUE_SWEEP_S)
            try:
                await self.settle_overdue()
            except Exception as exc:  # shown in `health` until a sweep works
                if self._sweep_error is None:
                    log.warning("payment shard %d: overdue sweep failed: %r", self._index, exc)
                self._sweep_error = f"{type(exc).__name__}: {exc}"
            else:
                self._sweep_error = None

    async def _run(self, stage: _StageT, events: list[Envelope]) -> _StageT:
        """One stage's transaction, under `self._lock`, on a memory read again if the last one
        failed; a failure here makes memory unsure."""
        await self._reload_if_unsure()
        try:
            result, _ = await self._uow.run(stage, events)
        except (OrderError, PoisonMessage):  # the rules', the provider's (its circuit open),
            raise  # or an event for no order: raised before any COMMIT was sent; no reload
        except BaseException:
            self._unsure = True
            raise
        return result

    async def _reload_if_unsure(self) -> None:
        """Read the credit exposure from Postgres when memory may be wrong: at start, and after
        a transaction that failed (a COMMIT whose answer was lost may have committed what memory
        did not take: authorizations missing from it let a customer past the credit limit,
        settlements kept in it declined later orders)."""
        if self._unsure:
            async with self._uow.begin() as tx:
                self.outstanding = await sql.outstanding(tx.conn)
            self._unsure = False
            self._reloads += 1
