"""The unit of work against the real Postgres: a replayed batch applies once, so does an event
that comes twice in one batch, an illegal move is neither applied nor emitted, statuses are
written with their timeline in one transaction, and a stage's queued writes go with its decision
in one statement (or are lost with a failed one)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from psycopg import AsyncCursor

from actors.notification import _Notify
from adapters.pg import open_pool
from adapters.uow import Tx, UnitOfWork, timeline_rows
from core.settings import Settings
from domain.decision import Decision, Move, Note, OrderView
from domain.events import Envelope, Topic, new_event
from domain.model import OrderStatus
from tests.integration.conftest import scratch_order, wait_until


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
    outbox = "SELECT 1 FROM outbox WHERE key = %s LIMIT 1"  # every row of the order published
    wait_until(lambda: not pg.execute(outbox, (str(oid),)).fetchone(), what="the outbox empty")
    tap.read_to_end()  # a duplicate published last would be read by now
    assert len(tap.events(str(oid))) == 1


@dataclass
class _Seen:
    """A stage that only records the events the unit of work hands it."""

    locks_orders: bool
    consumer: str | None = "uow-batch-test"
    decision: Decision = field(default_factory=Decision)
    seen: list[uuid.UUID] = field(default_factory=list)

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _Seen:
        self.seen += [e.event_id for e in events]
        return self


async def _run_stage(settings: Settings, stage: Any, events: list[Envelope]) -> Any:
    uow = UnitOfWork(await open_pool(settings.database_url, 1, "uow-test"), settings.redis_url)
    try:
        return (await uow.run(stage, events))[0]
    finally:
        await uow.pool.close()


@pytest.mark.parametrize("locks_orders", [True, False], ids=["claim_and_lock", "claim"])
def test_an_event_twice_in_one_batch_reaches_the_stage_once(
    pg: Any, settings: Settings, locks_orders: bool
) -> None:
    """The relay republishes a batch whose commit it did not see, and one fetch may carry both
    copies. The claim recorded the event once but handed both copies on: the short chaos test
    once found an order with two `ShipmentCreated` entries (two shipments rendered, one kept)."""
    first, other = (new_event("OrderCreated", _scratch_order(pg, "PENDING")) for _ in range(2))
    stage = asyncio.run(_run_stage(settings, _Seen(locks_orders), [first, other, first]))
    assert stage.seen == [first.event_id, other.event_id]


def test_a_notification_twice_in_one_batch_is_sent_once(pg: Any, settings: Settings) -> None:
    """The notification stage claims nothing (its rows are its dedupe): the same event twice in
    a batch records one message and must emit one `NotificationSent`."""
    oid = scratch_order(pg, "c-uow", "PAID")  # an order that exists (else the event is poison)
    event = new_event("PaymentAuthorized", oid, customerId="c-uow", amount="1.00")
    stage = asyncio.run(_run_stage(settings, _Notify(), [event, event]))
    assert [(e.type, e.order_id) for e in stage.decision.events] == [("NotificationSent", oid)]
    rows = pg.execute("SELECT status FROM notifications WHERE order_id = %s", (oid,)).fetchall()
    assert [r["status"] for r in rows] == ["PAID"]


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


@dataclass
class _RejectWithWrite(_Reject):
    """`_Reject` that also queues a write of its own (a note in the order's timeline)."""

    async def decide(
        self, tx: Tx, events: list[Envelope], orders: dict[uuid.UUID, OrderView]
    ) -> _RejectWithWrite:
        await super().decide(tx, events, orders)
        tx.write(timeline_rows([Note(e.order_id, OrderStatus.PENDING, "Checked") for e in events]))
        return self


async def _statements_of_one_stage(
    settings: Settings, event: Envelope, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    sent: list[str] = []
    execute = AsyncCursor.execute

    async def counted(self: AsyncCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *args, **kwargs)

    uow = UnitOfWork(await open_pool(settings.database_url, 1, "uow-test"), settings.redis_url)
    try:
        monkeypatch.setattr(AsyncCursor, "execute", counted)
        await uow.run(_RejectWithWrite(), [event])
    finally:
        monkeypatch.undo()
        await uow.pool.close()
    return sent


def test_a_stages_writes_and_its_decisions_go_as_one_statement(
    pg: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = _scratch_order(pg, "PENDING")
    sent = asyncio.run(
        _statements_of_one_stage(settings, new_event("OrderCreated", oid), monkeypatch)
    )
    # claim + lock, then the stage's note + the status + the move's timeline row + the outbox row
    assert len(sent) == 2, sent
    assert "INSERT INTO processed_events" in sent[0] and "FOR UPDATE" in sent[0]
    assert sent[1].count("INSERT INTO order_events") == 2 and "UPDATE orders" in sent[1]
    assert "INSERT INTO outbox" in sent[1]
    assert pg.execute("SELECT status FROM orders WHERE id = %s", (oid,)).fetchone() == {
        "status": "REJECTED"
    }
    timeline = pg.execute(
        "SELECT event FROM order_events WHERE order_id = %s ORDER BY event", (oid,)
    ).fetchall()
    assert [r["event"] for r in timeline] == ["Checked", "StockRejected"]


async def _queued_then(
    settings: Settings, oid: uuid.UUID, fail: bool
) -> tuple[list[bool], list[dict[str, Any]]]:
    """Queue a timeline row outside any decision, then end the block normally or with an error;
    returns what the `after` callbacks were told."""
    told: list[bool] = []
    uow = UnitOfWork(await open_pool(settings.database_url, 1, "uow-test"), settings.redis_url)
    try:
        try:
            async with uow.begin() as tx:
                tx.after(told.append)
                tx.write(timeline_rows([Note(oid, OrderStatus.PENDING, "Queued")]))
                if fail:
                    raise RuntimeError("the stage failed")
        except RuntimeError:
            pass
        async with uow.pool.connection() as conn:
            cur = await conn.execute("SELECT event FROM order_events WHERE order_id = %s", (oid,))
            return told, await cur.fetchall()
    finally:
        await uow.pool.close()


def test_queued_writes_commit_with_the_transaction_and_only_then(
    pg: Any, settings: Settings
) -> None:
    committed, failed = _scratch_order(pg, "PENDING"), _scratch_order(pg, "PENDING")
    assert asyncio.run(_queued_then(settings, committed, fail=False)) == (
        [True],
        [{"event": "Queued"}],
    )
    assert asyncio.run(_queued_then(settings, failed, fail=True)) == ([False], [])


async def _claim_and_lock_twice(
    settings: Settings, events: list[Envelope]
) -> list[tuple[list[uuid.UUID], set[uuid.UUID]]]:
    uow = UnitOfWork(await open_pool(settings.database_url, 1, "uow-test"), settings.redis_url)
    try:
        out = []
        for _ in range(2):
            async with uow.begin() as tx:
                new, orders = await tx.claim_and_lock("uow-contract-test", events)
                out.append(([e.event_id for e in new], set(orders)))
        return out
    finally:
        await uow.pool.close()


async def _values_fetched(
    settings: Settings, events: list[Envelope], monkeypatch: pytest.MonkeyPatch
) -> int:
    """How many values `claim_and_lock` gets back from Postgres for `events`."""
    fetched: list[dict[str, Any]] = []
    fetchall = AsyncCursor.fetchall

    async def recorded(self: AsyncCursor[Any]) -> Any:
        rows = await fetchall(self)
        fetched.extend(rows)
        return rows

    uow = UnitOfWork(await open_pool(settings.database_url, 1, "uow-test"), settings.redis_url)
    try:
        async with uow.begin() as tx:
            monkeypatch.setattr(AsyncCursor, "fetchall", recorded)
            await tx.claim_and_lock("uow-size-test", events)
            monkeypatch.undo()
            await tx.conn.rollback()
        return sum(len(v) if isinstance(v, list) else 1 for r in fetched for v in r.values())
    finally:
        monkeypatch.undo()
        await uow.pool.close()


def test_claim_and_lock_reports_new_events_even_without_an_order_and_locks_only_theirs(
    pg: Any, settings: Settings
) -> None:
    known, missing = _scratch_order(pg, "PENDING"), uuid.uuid4()
    events = [new_event("OrderCreated", known), new_event("OrderCreated", missing)]
    first, second = asyncio.run(_claim_and_lock_twice(settings, events))
    assert first == ([e.event_id for e in events], {known})  # the phantom order: claimed, no row
    assert second == ([], set())  # a redelivery: nothing new, nothing locked


def test_claim_and_lock_answers_in_proportion_to_the_batch(
    pg: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full batch once came back as every claimed id on every order row: 2,000 x 2,000 ids,
    seconds of work per cycle, and a pipeline that fell behind for good at 320 orders/s."""
    events = [new_event("OrderCreated", _scratch_order(pg, "PENDING")) for _ in range(200)]
    columns = 8  # new, then the seven order columns
    assert asyncio.run(_values_fetched(settings, events, monkeypatch)) <= 2 * len(events) * columns
