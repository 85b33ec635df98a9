"""The unit of work against the real Postgres: a replayed batch applies once, an illegal move is
neither applied nor emitted, and statuses are written with their timeline in one transaction."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from adapters.pg import open_pool
from adapters.uow import Tx, UnitOfWork
from core.settings import Settings
from domain.decision import Decision, Move, OrderView
from domain.events import Envelope, Topic, new_event
from domain.model import OrderStatus


def _scratch_order(pg: Any, status: str) -> uuid.UUID:
    oid = uuid.uuid4()
    pg.execute(
        "INSERT INTO orders (id, principal, customer_id, status, items, total, currency, "
        "payment_method, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, 1, 'USD', 'pm_card_visa', now(), now())",
        (oid, f"uow-{oid.hex[:8]}", f"uow-{oid.hex[:8]}", status, json.dumps([])),
    )
    pg.commit()
    return oid


@dataclass
class _Reject:
    consumer: str | None = "uow-contract-test"
    locks_orders: bool = True
    decision: Decision = field(default_factory=Decision)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Reject:
        for e in events:
            emits = new_event("StockRejected", e.order_id, reason="contract test")
            move = Move(e.order_id, OrderStatus.REJECTED, "StockRejected", {"reason": "t"}, emits)
            self.decision.moves.append(move)
        return self


async def _run_twice(settings: Settings, event: Envelope) -> list[list[bool]]:
    uow = UnitOfWork(await open_pool(settings.database_url, 1, "uow-test"), settings.redis_url)
    try:
        outcomes = []
        for _ in range(2):
            _, applied = await uow.run(_Reject(), [event])
            outcomes.append([a.applied for a in applied])
        return outcomes
    finally:
        await uow.pool.close()


def test_a_replayed_batch_is_claimed_once_and_applied_once(
    pg: Any, settings: Settings, kafka_tap: Any
) -> None:
    tap = kafka_tap(Topic.INVENTORY_REJECTED)
    oid = _scratch_order(pg, "PENDING")
    event = new_event("OrderCreated", oid)
    assert asyncio.run(_run_twice(settings, event)) == [[True], []]
    status = pg.execute("SELECT status, reason FROM orders WHERE id = %s", (oid,)).fetchone()
    assert status == {"status": "REJECTED", "reason": "t"}
    timeline = pg.execute("SELECT event FROM order_events WHERE order_id = %s", (oid,)).fetchall()
    assert [r["event"] for r in timeline] == ["StockRejected"]
    tap.wait_for(lambda _: len(tap.events(str(oid))) >= 1, what="the rejection on Kafka")
    assert len(tap.events(str(oid))) == 1


async def _illegal_move(settings: Settings, oid: uuid.UUID) -> tuple[bool, int, int]:
    pool = await open_pool(settings.database_url, 1, "uow-test")
    uow = UnitOfWork(pool, settings.redis_url)
    try:
        async with uow.begin() as tx:
            orders = await tx.lock([oid])
            emits = new_event("OrderCancelled", oid, reason="late")
            move = Move(oid, OrderStatus.CANCELLED, "OrderCancelled", None, emits)
            [applied] = await tx.apply(Decision(moves=[move]), orders)
            cur = await tx.conn.execute(
                "SELECT count(*) AS n FROM outbox WHERE key = %s", (str(oid),)
            )
            queued = (await cur.fetchone() or {"n": -1})["n"]
            cur = await tx.conn.execute(
                "SELECT count(*) AS n FROM order_events WHERE order_id = %s", (oid,)
            )
            timeline = (await cur.fetchone() or {"n": -1})["n"]
        return applied.applied, queued, timeline
    finally:
        await pool.close()


def test_an_illegal_move_is_neither_applied_nor_recorded_nor_emitted(
    pg: Any, settings: Settings
) -> None:
    oid = _scratch_order(pg, "DELIVERED")
    assert asyncio.run(_illegal_move(settings, oid)) == (False, 0, 0)
    assert pg.execute("SELECT status FROM orders WHERE id = %s", (oid,)).fetchone() == {
        "status": "DELIVERED"
    }
