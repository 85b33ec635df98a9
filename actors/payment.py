"""Payment shard actors: each owns the ledger of the customers with `crc32(customer) % N`.

At most one charge per order: the `payments` row (primary key = order id) is written in the
same transaction as the order's transition, the dedupe row and the outbox event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis

from adapters.pg import (
    apply_transitions,
    claim_events,
    claim_ownership,
    insert_outbox,
    insert_values,
    lock_orders,
    open_pool,
    watch_ownership,
)
from adapters.provider import FAULT_KEY, guarded_call, make_breaker
from adapters.status import StatusPublisher
from core.metrics import Metrics
from core.priority import renice_process
from core.registry import platform_actor
from core.settings import get_settings
from domain.events import Envelope, new_event
from domain.model import OrderStatus
from domain.payment import decide

log = logging.getLogger(__name__)
CONSUMER = "payment"


@platform_actor(max_concurrency=64)
class PaymentShard:
    async def __init__(self, index: int) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        key = f"payment-shard-{index}"
        renice_process(self._settings.pipeline_niceness, key)
        self._index = index
        # single owner, also across clusters: held while this process lives, and watched (a
        # Postgres restart drops the lock: the process then exits and its restart claims it)
        self._owner = await claim_ownership(self._settings.database_url, key)
        self._owner_watch = asyncio.create_task(watch_ownership(self._owner, key))
        self._pool = await open_pool(self._settings.database_url, 4, f"payment-{index}")
        self._redis = aioredis.from_url(self._settings.redis_url, decode_responses=True)
        self._breaker = make_breaker(
            self._settings.redis_url,
            self._settings.breaker_fail_max,
            self._settings.breaker_reset_s,
        )
        self._status = StatusPublisher(self._settings.redis_url)
        self._metrics = Metrics()
        self._lock = asyncio.Lock()
        self._limit = Decimal(str(self._settings.credit_limit))
        self._outstanding: dict[str, Decimal] = {}
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT customer_id, sum(amount) AS s FROM payments WHERE status = 'AUTHORIZED' "
                "GROUP BY customer_id"
            )
            self._outstanding = {r["customer_id"]: r["s"] for r in await cur.fetchall()}

    async def health(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "status": "up",
            "shard": self._index,
            "breaker": self._breaker.current_state,
            "customers": len(self._outstanding),
        }

    async def outstanding(self, customer_id: str) -> float:
        return float(self._outstanding.get(customer_id, Decimal("0")))

    async def authorize_batch(self, events: list[Envelope]) -> None:
        """Handle `inventory.reserved`: charge once per order, or decline; emit the outcome.

        Raises `Unavailable` (nothing committed) while the provider's circuit is open, so the
        consumer retries the batch later and in-flight orders resume when it closes.
        """
        async with self._lock:
            fault = await self._redis.get(FAULT_KEY) == "down"
            self._metrics.breaker_state(str(self._index), self._breaker.current_state)
            async with self._pool.connection() as conn:
                new = await claim_events(conn, CONSUMER, [e.event_id for e in events])
                todo = [e for e in events if e.event_id in new]
                locked = await lock_orders(conn, [e.order_id for e in todo])
                pending = dict(self._outstanding)
                decided: list[tuple[Envelope, Any, Decimal, str | None]] = []
                for e in todo:
                    row = locked.get(e.order_id)
                    if row is None or row["status"] != OrderStatus.RESERVED.value:
                        continue  # cancelled or expired meanwhile: never charge
                    customer = row["customer_id"]
                    amount = Decimal(str(row["total"]))
                    owed = pending.get(customer, Decimal("0"))
                    reason = decide(row["payment_method"], amount, owed, self._limit)
                    if reason is None:
                        pending[customer] = owed + amount
                    decided.append((e, row, amount, reason))
                approved = [str(e.order_id) for e, _, _, reason in decided if reason is None]
                refs = iter(guarded_call(self._breaker, fault, approved))
                payments, changes, outbox = [], [], []
                for e, row, amount, reason in decided:
                    customer = row["customer_id"]
                    ref = next(refs) if reason is None else None
                    status = "AUTHORIZED" if reason is None else "DECLINED"
                    payments.append((e.order_id, customer, amount, status, reason, ref))
                    data = {
                        "customerId": customer,
                        "amount": str(amount),
                        "reason": reason,
                        "items": row["items"],
                    }
                    if reason is None:
                        changes.append(
                            (
                                e.order_id,
                                OrderStatus.PAID,
                                "PaymentAuthorized",
                                {"amount": str(amount), "providerRef": ref},
                            )
                        )
                        outbox.append(new_event("PaymentAuthorized", e.order_id, **data))
                    else:
                        changes.append(
                            (
                                e.order_id,
                                OrderStatus.DECLINED,
                                "PaymentDeclined",
                                {"reason": reason},
                            )
                        )
                        outbox.append(new_event("PaymentDeclined", e.order_id, **data))
                await insert_values(
                    conn,
                    "INSERT INTO payments (order_id, customer_id, amount, status, reason, "
                    "provider_ref)",
                    "(%s, %s, %s, %s, %s, %s)",
                    payments,
                )
                done = await apply_transitions(conn, locked, changes)
                await insert_outbox(conn, outbox)
            self._outstanding = pending
        await self._status.publish(done)

    async def refund_batch(self, events: list[Envelope]) -> None:
        """Handle `order.cancelled` and failed shipments: refund an authorized charge once."""
        await self._settle(events, "REFUNDED", emit=True)

    async def capture_batch(self, events: list[Envelope]) -> None:
        """Handle delivery: the authorization is captured and leaves the credit exposure."""
        await self._settle(events, "CAPTURED", emit=False)

    async def _settle(self, events: list[Envelope], target: str, *, emit: bool) -> None:
        async with self._lock:
            async with self._pool.connection() as conn:
                new = await claim_events(
                    conn, f"{CONSUMER}-{target.lower()}", [e.event_id for e in events]
                )
                ids: list[uuid.UUID] = [e.order_id for e in events if e.event_id in new]
                if not ids:
                    return
                cur = await conn.execute(
                    "UPDATE payments SET status = %s, updated_at = now() "
                    "WHERE order_id = ANY(%s) AND status = 'AUTHORIZED' "
                    "RETURNING order_id, customer_id, amount",
                    (target, ids),
                )
                settled = await cur.fetchall()
                if emit:
                    await insert_outbox(
                        conn,
                        [
                            new_event(
                                "PaymentRefunded",
                                r["order_id"],
                                customerId=r["customer_id"],
                                amount=str(r["amount"]),
                            )
                            for r in settled
                        ],
                    )
            for r in settled:
                owed = self._outstanding.get(r["customer_id"], Decimal("0")) - r["amount"]
                self._outstanding[r["customer_id"]] = max(owed, Decimal("0"))
