"""The shipping actor: creates shipments for paid orders and moves them along
CREATED → SHIPPED → DELIVERED (or FAILED → refund), emitting `shipping.updated` each time.

Timers are in memory and rebuilt from the `shipments` table on restart, so a killed actor
resumes every shipment where Postgres says it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import secrets
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from adapters.pg import (
    append_timeline,
    apply_transitions,
    claim_events,
    insert_outbox,
    insert_values,
    lock_orders,
    open_pool,
    update_from_values,
)
from adapters.status import StatusPublisher
from core.pacing import pace_batch
from core.priority import renice_process
from core.registry import platform_actor
from core.settings import get_settings
from domain.events import Envelope, new_event
from domain.model import OrderStatus

log = logging.getLogger(__name__)
CONSUMER = "shipping"
FAIL_KEY = "fault:shipping-fail:{}"
HOLD_KEY = "fault:shipping-hold:{}"
_HOLD_RECHECK_S = 0.2
_IDLE_S = 1.0


@platform_actor(max_concurrency=64)
class ShippingActor:
    async def __init__(self) -> None:  # type: ignore[misc]
        self._settings = get_settings()
        renice_process(self._settings.pipeline_niceness, "shipping")
        self._pool = await open_pool(self._settings.database_url, 4, "shipping")
        self._redis = aioredis.from_url(self._settings.redis_url, decode_responses=True)
        self._status = StatusPublisher(self._settings.redis_url)
        self._due: list[tuple[float, str, uuid.UUID]] = []  # (when, next step, order id)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT order_id, status FROM shipments WHERE status IN ('CREATED', 'SHIPPED')"
            )
            for r in await cur.fetchall():
                step = "SHIPPED" if r["status"] == "CREATED" else "DELIVERED"
                heapq.heappush(self._due, (time.monotonic(), step, r["order_id"]))
        self._wake = asyncio.Event()
        self._last_batch, self._last_size = 0.0, 0
        self._ticker = asyncio.create_task(self._tick_loop())

    async def health(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "status": "up", "pending": len(self._due)}

    async def create_batch(self, events: list[Envelope]) -> None:
        """Handle `payment.authorized`: one shipment per paid order, `shipping.updated` CREATED."""
        fail_flags = (
            await self._redis.mget([FAIL_KEY.format(e.data.get("customerId", "")) for e in events])
            if events
            else []
        )
        async with self._pool.connection() as conn:
            new = await claim_events(conn, CONSUMER, [e.event_id for e in events])
            todo = [(e, f) for e, f in zip(events, fail_flags, strict=True) if e.event_id in new]
            locked = await lock_orders(conn, [e.order_id for e, _ in todo])
            created, outbox, timeline = [], [], []
            for e, fail in todo:
                row = locked.get(e.order_id)
                if row is None or row["status"] != OrderStatus.PAID.value:
                    continue  # cancelled after payment: the refund path handles it
                tracking = f"TRK{secrets.token_hex(6).upper()}"
                created.append((e.order_id, tracking, bool(fail)))
                detail = {"shipmentStatus": "CREATED", "tracking": tracking}
                timeline.append((e.order_id, row["status"], "ShipmentCreated", detail))
                outbox.append(
                    new_event(
                        "ShippingUpdated",
                        e.order_id,
                        customerId=row["customer_id"],
                        items=row["items"],
                        **detail,
                    )
                )
            await insert_values(
                conn,
                "INSERT INTO shipments (order_id, tracking, status, fail)",
                "(%s, %s, 'CREATED', %s)",
                created,
                "ON CONFLICT DO NOTHING",
            )
            await append_timeline(conn, timeline)
            await insert_outbox(conn, outbox)
        when = time.monotonic() + self._settings.ship_delay_s
        for order_id, _, _ in created:
            self._schedule(when, "SHIPPED", order_id)

    def _schedule(self, when: float, step: str, order_id: uuid.UUID) -> None:
        heapq.heappush(self._due, (when, step, order_id))
        self._wake.set()

    async def _tick_loop(self) -> None:
        while True:
            # sleep until the earliest step is due (or a new one is scheduled); batch what is due
            wait = self._due[0][0] - time.monotonic() if self._due else _IDLE_S
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
            # under load at most one transaction per window: steps due meanwhile join this one
            await pace_batch(self._last_batch, self._last_size, self._settings)
            now = time.monotonic()
            batch: list[tuple[float, str, uuid.UUID]] = []
            while self._due and self._due[0][0] <= now and len(batch) < 500:
                batch.append(heapq.heappop(self._due))
            if not batch:
                continue
            self._last_batch, self._last_size = now, len(batch)
            try:
                await self._advance(batch)
            except Exception as exc:  # e.g. Postgres restarting: put them back and retry
                log.warning("shipment step failed, retrying: %s", exc)
                for item in batch:
                    self._schedule(now + 1.0, item[1], item[2])

    async def _advance(self, batch: list[tuple[float, str, uuid.UUID]]) -> None:
        steps = {oid: step for _, step, oid in batch}
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT order_id, status, fail, tracking FROM shipments WHERE order_id = ANY(%s) "
                "FOR UPDATE",
                (list(steps),),
            )
            shipments = {r["order_id"]: r for r in await cur.fetchall()}
            locked = await lock_orders(conn, list(steps))
            customers = sorted({r["customer_id"] for r in locked.values()})
            held_flags = await self._redis.mget([HOLD_KEY.format(c) for c in customers])
            held = {c for c, flag in zip(customers, held_flags, strict=True) if flag}
            changes, updates, outbox, follow, later = [], [], [], [], []
            for oid, step in steps.items():
                ship, row = shipments.get(oid), locked.get(oid)
                if ship is None or row is None:
                    continue
                if row["customer_id"] in held and row["status"] == OrderStatus.PAID.value:
                    later.append((step, oid))  # dev fault: shipment held in the warehouse
                    continue
                expected = "CREATED" if step == "SHIPPED" else "SHIPPED"
                if ship["status"] != expected:
                    continue  # already advanced (replay after restart)
                if row["status"] not in (OrderStatus.PAID.value, OrderStatus.SHIPPED.value):
                    updates.append(("CANCELLED", oid))  # order cancelled before it left
                    continue
                new_status = "FAILED" if ship["fail"] and step == "SHIPPED" else step
                updates.append((new_status, oid))
                target = {
                    "SHIPPED": OrderStatus.SHIPPED,
                    "DELIVERED": OrderStatus.DELIVERED,
                    "FAILED": OrderStatus.REFUNDED,
                }[new_status]
                detail: dict[str, Any] = {
                    "shipmentStatus": new_status,
                    "tracking": ship["tracking"],
                }
                if new_status == "FAILED":
                    detail["reason"] = "shipment failed; payment refunded and stock returned"
                changes.append((oid, target, f"Shipment{new_status.title()}", detail))
                outbox.append(
                    new_event(
                        "ShippingUpdated",
                        oid,
                        customerId=row["customer_id"],
                        items=row["items"],
                        **detail,
                    )
                )
                if new_status == "SHIPPED":
                    follow.append(oid)
            await update_from_values(
                conn,
                "UPDATE shipments s SET status = v.status, updated_at = now()",
                "(%s::text, %s::uuid)",
                "status, order_id",
                "s.order_id = v.order_id",
                updates,
            )
            done = await apply_transitions(conn, locked, changes)
            await insert_outbox(conn, outbox)
        await self._status.publish(done)
        when = time.monotonic() + self._settings.deliver_delay_s
        for oid in follow:
            self._schedule(when, "DELIVERED", oid)
        for step, oid in later:
            self._schedule(time.monotonic() + _HOLD_RECHECK_S, step, oid)
