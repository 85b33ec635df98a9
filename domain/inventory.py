"""Inventory rules: all-or-nothing reservation, the open-hold cap, release, commit, expiry.

Stock of one SKU is `(on_hand, reserved)`; available = on_hand − reserved. A reservation holds
stock for one order (HELD); a decline, cancel, expiry or failed shipment releases it (RELEASED,
stock back exactly once); a shipment commits it (COMMITTED, stock leaves on-hand).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from domain.commands import sum_by_sku
from domain.decision import Decision, Move, OrderView
from domain.events import Envelope, new_event
from domain.model import OrderStatus
from domain.sharding import shard_of

OUT_OF_STOCK = "out of stock"
TOO_MANY_HOLDS = "too many open reservations: pay or cancel earlier orders first"
HOLD_EXPIRED = "reservation hold expired before payment"
HELD, RELEASED, COMMITTED = "HELD", "RELEASED", "COMMITTED"
# orders in these statuses hold no stock: a HELD reservation of one is stranded (its release
# was interrupted) and the shard's sweep gives it back
HOLDS_NOTHING = (
    OrderStatus.REJECTED,
    OrderStatus.DECLINED,
    OrderStatus.CANCELLED,
    OrderStatus.REFUNDED,
)

# orders in these statuses have shipped: a HELD reservation of one is a commit that never came
# (its `shipping.updated` dead-lettered), and the sweep commits it: the stock has left
HOLDS_SHIPPED = (OrderStatus.SHIPPED, OrderStatus.DELIVERED)

Lines = list[tuple[str, int]]


@dataclass(frozen=True)
class Stock:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class ReserveRequest:
    """One order's lines that fall on one shard."""

    order_id: uuid.UUID
    customer_id: str
    principal: str
    lines: Lines


@dataclass
class Reservation:
    """A shard's answer to a batch: per request ok or not, the stock to move into `reserved`,
    and the reservation rows `(order_id, sku, customer, principal, qty)` to insert."""

    results: list[bool] = field(default_factory=list)
    delta: dict[str, int] = field(default_factory=dict)
    rows: list[tuple[uuid.UUID, str, str, str, int]] = field(default_factory=list)


class InvalidLines(ValueError):
    """An `order.created` event whose items cannot be read: poison."""


def lines_of(event: Envelope) -> Lines:
    """The `(sku, qty)` lines of an `OrderCreated` event, one per SKU: a SKU on two lines is one
    line with both quantities, in the place of its first. The gateway merges them before it
    stores an order, but an event may come from elsewhere (a replayed, edited dead letter; a
    producer of the user's), and a reservation is one row per order and SKU."""
    try:
        lines = [(str(i["sku"]), int(i["qty"])) for i in event.data["items"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidLines(f"event {event.event_id} has no valid items") from exc
    if not lines or any(qty <= 0 for _, qty in lines):
        raise InvalidLines(f"event {event.event_id} has no valid items")
    return list(sum_by_sku(lines).items())


def still_pending(
    events: Sequence[Envelope], orders: Mapping[uuid.UUID, OrderView]
) -> list[Envelope]:
    """The `order.created` events whose order still waits for stock: one cancelled before its
    event came reserves nothing, so it cannot take the last units from the orders after it."""
    return [e for e in events if orders[e.order_id].status == OrderStatus.PENDING]


def over_hold_cap(
    orders: Sequence[tuple[uuid.UUID, str]], holds: Mapping[str, int], cap: int
) -> set[uuid.UUID]:
    """Orders `(order_id, principal)` whose principal already holds `cap` unshipped
    reservations, counting the earlier orders of the same batch."""
    counted, capped = dict(holds), set()
    for order_id, principal in orders:
        if counted.get(principal, 0) >= cap:
            capped.add(order_id)
        else:
            counted[principal] = counted.get(principal, 0) + 1
    return capped


def split_by_shard(
    events: Sequence[Envelope], shards: int, skip: set[uuid.UUID]
) -> dict[int, list[ReserveRequest]]:
    """Each order's lines grouped by the shard owning the SKU (orders in `skip` left out)."""
    per_shard: dict[int, list[ReserveRequest]] = defaultdict(list)
    for e in events:
        if e.order_id in skip:
            continue
        split: dict[int, Lines] = defaultdict(list)
        for sku, qty in lines_of(e):
            split[shard_of(sku, shards)].append((sku, qty))
        customer, principal = str(e.data.get("customerId", "")), str(e.data.get("principal", ""))
        for index in sorted(split):
            per_shard[index].append(ReserveRequest(e.order_id, customer, principal, split[index]))
    return per_shard


def reserve(
    stock: Mapping[str, Stock],
    requests: Sequence[ReserveRequest],
    previous: Mapping[uuid.UUID, set[str]],
) -> Reservation:
    """All-or-nothing per request, in request order. An order seen before (`previous` holds its
    reservation states) gets the answer it got then, and nothing is reserved twice."""
    out = Reservation()
    decided = {oid: set(states) for oid, states in previous.items()}
    for req in requests:
        if req.order_id in decided:
            out.results.append(decided[req.order_id] <= {HELD, COMMITTED})
            continue
        wanted = sum_by_sku(req.lines)  # one row per SKU: a SKU on two lines counts once
        ok = all(
            sku in stock and stock[sku].available - out.delta.get(sku, 0) >= qty
            for sku, qty in wanted.items()
        )
        out.results.append(ok)
        if ok:
            decided[req.order_id] = {HELD}
            for sku, qty in wanted.items():
                out.delta[sku] = out.delta.get(sku, 0) + qty
                out.rows.append((req.order_id, sku, req.customer_id, req.principal, qty))
    return out


def combine(
    events: Sequence[Envelope],
    capped: set[uuid.UUID],
    answers: Iterable[tuple[Sequence[ReserveRequest], Sequence[bool]]],
) -> dict[uuid.UUID, bool]:
    """An order is reserved only when every shard holding one of its SKUs said yes."""
    ok = {e.order_id: e.order_id not in capped for e in events}
    for requests, results in answers:
        for req, good in zip(requests, results, strict=True):
            ok[req.order_id] = ok[req.order_id] and good
    return ok


def outcomes(
    events: Sequence[Envelope], ok: Mapping[uuid.UUID, bool], capped: set[uuid.UUID]
) -> Decision:
    """RESERVED with `StockReserved`, or REJECTED with `StockRejected` and its reason."""
    decision = Decision()
    for e in events:
        data = {k: e.data.get(k) for k in ("customerId", "items", "total", "paymentMethod")}
        if ok[e.order_id]:
            event = new_event("StockReserved", e.order_id, **data)
            decision.moves.append(
                Move(e.order_id, OrderStatus.RESERVED, "StockReserved", None, event)
            )
            continue
        reason = TOO_MANY_HOLDS if e.order_id in capped else OUT_OF_STOCK
        event = new_event("StockRejected", e.order_id, reason=reason, **data)
        decision.moves.append(
            Move(e.order_id, OrderStatus.REJECTED, "StockRejected", {"reason": reason}, event)
        )
    return decision


def settle(rows: Iterable[tuple[str, int]], target: str) -> dict[str, tuple[int, int]]:
    """Stock change per SKU `(to reserved, to on-hand)` when HELD rows `(sku, qty)` become
    RELEASED (stock back to available) or COMMITTED (stock leaves on-hand)."""
    if target not in (RELEASED, COMMITTED):
        raise ValueError(f"a hold settles as {RELEASED} or {COMMITTED}, not {target}")
    leaves = 1 if target == COMMITTED else 0
    delta: dict[str, tuple[int, int]] = {}
    for sku, qty in rows:
        reserved, on_hand = delta.get(sku, (0, 0))
        delta[sku] = (reserved - qty, on_hand - qty * leaves)
    return delta


def set_on_hand(current: Stock, on_hand: int) -> Stock:
    """An admin restock; never below what is reserved (raises ValueError naming the floor)."""
    if on_hand < 0:
        raise ValueError("onHand must be at least 0")
    if on_hand < current.reserved:
        raise ValueError(f"onHand {on_hand} is below the reserved {current.reserved} units")
    return Stock(on_hand, current.reserved)


def expire(orders: Mapping[uuid.UUID, OrderView], expired: Mapping[uuid.UUID, str]) -> Decision:
    """Orders whose hold outlived its time without payment are cancelled; `OrderCancelled`
    makes the inventory group release their stock once. `expired`: each order's status when
    the sweep found it; one whose status moved since (paid, or a reservation retried past the
    hold's time that just made it RESERVED) has a new window and is left alone."""
    decision = Decision()
    unpaid = (OrderStatus.PENDING, OrderStatus.RESERVED)
    for oid, seen in expired.items():
        view = orders.get(oid)
        if view is None or view.status not in unpaid or view.status.value != seen:
            continue  # moved (or gone) since the sweep looked
        event = new_event(
            "OrderCancelled",
            oid,
            reason=HOLD_EXPIRED,
            customerId=view.customer_id,
            previous=view.status.value,
        )
        decision.moves.append(
            Move(oid, OrderStatus.CANCELLED, "HoldExpired", {"reason": HOLD_EXPIRED}, event)
        )
    return decision
