"""The platform's invariants (docs/reliability.md), checked in Postgres and Kafka after a run."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters import audit, audit_effects
from adapters.kafka import client_options, partitions_of
from cli.load import Placed
from core.settings import Settings
from domain.events import Envelope, Topic
from domain.model import TERMINAL

_READ_S = 120.0  # reading a chaos run's events to the topics' ends (a broker gone: none come)

CHARGED = ("AUTHORIZED", "CAPTURED")
PAID_STATUSES = ("PAID", "SHIPPED", "DELIVERED")
# the topics read back after a run (`kafka_from` holds their offsets at its start): one
# authorization per order, one message per (order, status)
AUDITED_TOPICS = (Topic.PAYMENT_AUTHORIZED, Topic.NOTIFICATION_SEND)
_FINAL = {t.value for t in TERMINAL}  # the statuses that end an order's life, as stored


@dataclass
class Verdict:
    accepted: int = 0
    terminal: int = 0
    lost: int = 0
    oversold: int = 0
    double_charged: int = 0
    duplicates_effects: int = 0
    unexpected: int = 0  # a final status the order's request does not allow
    wrong_effects: int = 0  # a finished order's stock, charge, capture or message not as due
    outcomes: Counter[str] = field(default_factory=Counter)  # final status → orders
    # orders the gateway refused with an answer the load does not retry (4xx other than 409
    # and 429, `cli.load.SteadyLoad.refused`), by status: a run plans none
    refused: Counter[int] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.oversold
            or self.double_charged
            or self.duplicates_effects
            or self.unexpected
            or self.wrong_effects
            or self.refused
        )

    def line(self) -> str:
        return (
            f"chaos: accepted={self.accepted} terminal={self.terminal} lost={self.lost} "
            f"oversold={self.oversold} double_charged={self.double_charged} "
            f"duplicates_effects={self.duplicates_effects} unexpected={self.unexpected} "
            f"wrong_effects={self.wrong_effects} refused={sum(self.refused.values())}"
            + (f" {dict(sorted(self.refused.items()))}" if self.refused else "")
        )


def terminal_count(dsn: str, ids: list[str]) -> int:
    return audit.count_in_status(dsn, ids, list(_FINAL))


def check(
    dsn: str,
    ids: list[str],
    start_stock: dict[str, int],
    kafka_from: dict[TopicPartition, int],
    bootstrap: str,
    settle_s: float = 30.0,
    placed: Mapping[str, Placed] | None = None,
    may_sell_out: frozenset[str] = frozenset(),
    kafka: Settings | None = None,
) -> Verdict:
    """Every invariant for the orders `ids` accepted during the run. A finished order's stock,
    capture and message come after its final move (and a stranded hold's release with its
    shard's sweep): `settle_s` is how long those may take. With `placed` (what each order
    asked for), each final status is judged against it: only SKUs in `may_sell_out` may reject
    an order for stock. `kafka`: how to log in to a broker not this process's (a harness's)."""
    v = Verdict(accepted=len(ids))
    with audit.connect(dsn) as conn:
        now = audit.statuses(conn, ids)
        _check_terminal(v, now, ids)
        if placed is not None:
            _check_outcomes(v, now, placed, may_sell_out)
        _settle(conn, ids, settle_s)
        _check_stock(v, conn, ids, start_stock)
        _check_charges(v, conn, ids)
        _check_effects(v, conn, ids)
        # 4. effects once: one timeline entry per (status, event), held stock released once
        dup = audit.duplicate_timeline(conn, ids)
        v.duplicates_effects += len(dup)
        v.details += [f"duplicate timeline entry: {d}" for d in dup[:5]]
    wanted = set(ids)
    charges = asyncio.run(
        _distinct_events(bootstrap, Topic.PAYMENT_AUTHORIZED, kafka_from, wanted, _order, kafka)
    )
    doubled = [oid for oid, n in charges.items() if n > 1]
    v.double_charged += len(doubled)
    v.details += [f"order {oid} authorized by {charges[oid]} distinct events" for oid in doubled]
    sent = asyncio.run(
        _distinct_events(bootstrap, Topic.NOTIFICATION_SEND, kafka_from, wanted, _message, kafka)
    )
    twice = [key for key, n in sent.items() if n > 1]
    v.duplicates_effects += len(twice)
    v.details += [f"message {key} sent by {sent[key]} distinct events" for key in twice[:5]]
    unsent = [(i, s) for i, s in now.items() if s in _FINAL and (i, s) not in sent]
    v.wrong_effects += len(unsent)
    v.details += [f"no notification.send event for {u}" for u in unsent[:5]]
    return v


FULFILLED = ("DELIVERED",)


def _settle(
    conn: audit.Conn,
    ids: list[str],
    settle_s: float,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Wait (at most `settle_s`) until what follows a final status is done: stock no longer
    held, deliveries captured, charges of unpaid orders refunded, final statuses notified, and
    the outbox empty, all found in one pass. (A check passed once and dropped let a capture or
    a message that came after it leave its event in the outbox, and the audit that followed
    counted it: a multinode CI run of 2026-12-07, on a host capped at half a core.) The
    outbox is looked at last: an effect found done has its event there by then."""
    finished = list(_FINAL)
    checks: list[Callable[[], object]] = [
        lambda: audit.held_when_finished(conn, ids, finished),
        lambda: audit_effects.uncaptured(conn, ids),
        # refunds: a cancelled or failed order's charge is released by the payment group after
        # the order's status moved; an audit in between counted it a double charge
        lambda: _charged_unpaid(conn, ids),
        lambda: audit_effects.unnotified(conn, ids),
        lambda: audit.outbox_rows(conn),
    ]
    deadline = time.monotonic() + settle_s
    while any(check() for check in checks) and time.monotonic() < deadline:
        pause(0.5)


def _check_outcomes(
    v: Verdict, now: dict[str, str], placed: Mapping[str, Placed], may_sell_out: frozenset[str]
) -> None:
    """0. each final status is one the order's request allows: DELIVERED, or DECLINED with
    the declining card; REJECTED only for an order naming a SKU allowed to sell out. (A hold
    that expired, a refund, a rejection while stock was there: none is planned in a run.)"""
    for oid, status in now.items():
        v.outcomes[status] += 1
        asked = placed.get(oid)
        if asked is None or status not in _FINAL:
            continue
        allowed = {"DECLINED" if asked.declining else "DELIVERED"}
        if any(sku in may_sell_out for sku, _ in asked.lines):
            allowed.add("REJECTED")
        if status not in allowed:
            v.unexpected += 1
            if v.unexpected <= 5:
                v.details.append(f"order {oid} ({asked}) ended {status}")
    v.details.append(f"final statuses: {dict(v.outcomes)}")


def _check_effects(v: Verdict, conn: audit.Conn, ids: list[str]) -> None:
    """3. a delivered order took exactly its items' stock and others none; its charge was
    captured; its shipment delivered and no unpaid order has one; every final status has its
    message; nothing is left in the outbox."""
    checks: list[tuple[str, list[Any]]] = [
        (
            "stock taken not as ordered",
            audit_effects.stock_not_matching_items(conn, ids, FULFILLED),
        ),
        ("delivered, not captured", audit_effects.uncaptured(conn, ids)),
        ("final status not notified", audit_effects.unnotified(conn, ids)),
        ("shipment out of step", audit_effects.shipments_out_of_step(conn, ids)),
    ]
    for what, rows in checks:
        v.wrong_effects += len(rows)
        v.details += [f"{what}: {r}" for r in rows[:5]]
    backlog = audit.outbox_rows(conn)
    if backlog:
        v.wrong_effects += backlog
        v.details.append(f"outbox still holds {backlog} row(s) after the settle time")


def _order(e: Envelope) -> Hashable:
    return str(e.order_id)


def _message(e: Envelope) -> Hashable:
    return (str(e.order_id), str(e.data.get("status")))


def _check_terminal(v: Verdict, statuses: dict[str, str], ids: list[str]) -> None:
    v.terminal = sum(1 for s in statuses.values() if s in _FINAL)
    v.lost = len(ids) - v.terminal
    if v.lost:
        v.details.append(f"not terminal: {Counter(statuses.get(i, 'MISSING') for i in ids)}")


def _check_stock(v: Verdict, conn: audit.Conn, ids: list[str], start: dict[str, int]) -> None:
    """1. stock: never negative, reserved == open holds, a hold open exactly while its
    reservation is HELD, no stock held for a finished order, sold ≤ what was there."""
    for r in audit.held_when_finished(conn, ids, list(_FINAL)):
        v.oversold += 1
        v.details.append(f"stock still held for a finished order: {r}")
    for r in audit.broken_stock(conn):
        v.oversold += 1
        v.details.append(f"stock bookkeeping broken: {r}")
    for r in audit.holds_out_of_step(conn, ids):
        v.oversold += 1
        v.details.append(f"reservation and open hold disagree: {r}")
    for r in audit.sold_by_sku(conn, ids):
        if r["sku"] in start and r["sold"] > start[r["sku"]]:
            v.oversold += int(r["sold"]) - start[r["sku"]]
            v.details.append(f"oversold {r['sku']}: {r['sold']} > {start[r['sku']]}")


def _charged_unpaid(conn: audit.Conn, ids: list[str]) -> list[audit.Row]:
    """Orders holding a charge while not paid (a paid order with no payment row at all is
    `wrong_charges`' in `_check_charges`, not one of these)."""
    return [b for b in audit.charge_mismatches(conn, ids, CHARGED, PAID_STATUSES) if b["status"]]


def _check_charges(v: Verdict, conn: audit.Conn, ids: list[str]) -> None:
    """2. charges: only orders that are paid keep a charge; each paid order has one, of its
    total."""
    bad = _charged_unpaid(conn, ids)
    v.double_charged += len(bad)
    v.details += [f"charge/status mismatch: {b}" for b in bad[:5]]
    wrong = audit_effects.wrong_charges(conn, ids, PAID_STATUSES, CHARGED)
    v.wrong_effects += len(wrong)
    v.details += [f"paid without its charge: {w}" for w in wrong[:5]]


async def _distinct_events(
    bootstrap: str,
    topic: str,
    start: dict[TopicPartition, int],
    ids: set[str],
    key: Callable[[Envelope], Hashable],
    kafka: Settings | None = None,
) -> Counter[Hashable]:
    """Distinct event ids on `topic` per `key` of an event, over the events of the orders `ids`
    since `start` (a redelivery of one event counts once; two events for one key count two)."""
    parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic, kafka)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(kafka)
    )
    await consumer.start()
    seen: dict[Hashable, set[str]] = {}
    try:
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start.get(tp, 0))
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + _READ_S
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {_READ_S:g}s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    e = _parse(r.value)
                    if e is not None and str(e.order_id) in ids:
                        seen.setdefault(key(e), set()).add(str(e.event_id))
    finally:
        await consumer.stop()
    return Counter({k: len(evs) for k, evs in seen.items()})


def _parse(raw: Any) -> Envelope | None:
    try:
        return Envelope.from_json(raw)
    except ValueError:
        return None


async def end_offsets(
    bootstrap: str, *topics: str, kafka: Settings | None = None
) -> dict[TopicPartition, int]:
    """Current end offsets of `topics` (where a run starts reading)."""
    parts = [TopicPartition(t, p) for t in topics for p in await partitions_of(bootstrap, t, kafka)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(kafka)
    )
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()
