"""What a pipeline stage decides, as plain data: the unit of work applies it.

A stage is a pure function of the current state (locked orders, stock, ledger, shipments) and a
batch of events. It returns a `Decision`: status moves (each with the event it emits when the
move applies), events emitted whatever the moves do, and timeline entries that do not change a
status. The stage's own state changes (stock, payments, shipments) are typed per stage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.events import Envelope
from domain.model import OrderStatus, can_transition

Detail = dict[str, Any] | None


@dataclass(frozen=True)
class OrderView:
    """An order as a stage sees it (read under its row lock)."""

    order_id: uuid.UUID
    status: OrderStatus
    customer_id: str
    principal: str
    items: list[dict[str, Any]]
    total: Decimal
    payment_method: str


@dataclass(frozen=True)
class Move:
    """Move `order_id` to `target`, recording `event` with `detail` in its timeline; `emits` is
    published only when the move applies (an illegal move is a bug: logged, never applied)."""

    order_id: uuid.UUID
    target: OrderStatus
    event: str
    detail: Detail = None
    emits: Envelope | None = None


@dataclass(frozen=True)
class Note:
    """A timeline entry that does not change the order's status."""

    order_id: uuid.UUID
    status: OrderStatus
    event: str
    detail: Detail = None


@dataclass
class Decision:
    moves: list[Move] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    """The outcome of one move: `applied` is False for an unknown order or an illegal move."""

    move: Move
    previous: OrderStatus | None
    applied: bool


def apply_moves(orders: dict[uuid.UUID, OrderView], moves: list[Move]) -> list[Applied]:
    """Run `moves` through the state machine over `orders`, in order; `orders` is updated so a
    second move of the same order in one batch starts from the first one's target."""
    results: list[Applied] = []
    for move in moves:
        view = orders.get(move.order_id)
        if view is None:
            results.append(Applied(move, None, False))
            continue
        if not can_transition(view.status, move.target):
            results.append(Applied(move, view.status, False))
            continue
        results.append(Applied(move, view.status, True))
        orders[move.order_id] = _with_status(view, move.target)
    return results


def _with_status(view: OrderView, status: OrderStatus) -> OrderView:
    return OrderView(
        view.order_id,
        status,
        view.customer_id,
        view.principal,
        view.items,
        view.total,
        view.payment_method,
    )
