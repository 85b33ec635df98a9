"""Property-based tests of the domain's invariants (hypothesis): stock never negative or
oversold, all-or-nothing per order, the credit limit holds, at most one charge per order, only
legal status paths, and the same batch applied twice changes nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import inventory, payment
from domain.decision import Move, apply_moves
from domain.inventory import ReserveRequest, Stock
from domain.model import OrderStatus, can_transition
from tests.unit.domain_fixtures import order

SKUS = ["A", "B", "C"]
stocks = st.fixed_dictionaries(
    {s: st.tuples(st.integers(0, 20), st.integers(0, 20)) for s in SKUS}
).map(lambda d: {s: Stock(max(a, b), min(a, b)) for s, (a, b) in d.items()})
lines = st.lists(
    st.tuples(st.sampled_from([*SKUS, "Z"]), st.integers(1, 8)), min_size=1, max_size=3
)
requests = st.lists(lines, max_size=12).map(
    lambda ls: [ReserveRequest(uuid.uuid4(), "c", "p", lns) for lns in ls]
)


@settings(max_examples=60, deadline=None)
@given(stocks, requests)
def test_reservation_never_oversells_and_is_all_or_nothing(
    stock: dict[str, Stock], reqs: list[ReserveRequest]
) -> None:
    out = inventory.reserve(stock, reqs, {})
    for sku, qty in out.delta.items():
        assert 0 < qty <= stock[sku].available  # never more than was available
    for req, ok in zip(reqs, out.results, strict=True):
        held = {r[1]: r[4] for r in out.rows if r[0] == req.order_id}
        wanted: dict[str, int] = {}
        for sku, qty in req.lines:
            wanted[sku] = wanted.get(sku, 0) + qty
        assert held == (wanted if ok else {})  # all lines or none, one row per SKU
    assert len({r[:2] for r in out.rows}) == len(out.rows)  # the table's primary key
    assert sum(r[4] for r in out.rows) == sum(out.delta.values())


@settings(max_examples=60, deadline=None)
@given(stocks, requests)
def test_the_same_batch_reserved_twice_holds_nothing_more(
    stock: dict[str, Stock], reqs: list[ReserveRequest]
) -> None:
    first = inventory.reserve(stock, reqs, {})
    previous: dict[uuid.UUID, set[str]] = {}
    for req, ok in zip(reqs, first.results, strict=True):
        if ok:
            previous[req.order_id] = {inventory.HELD}
    after = {s: Stock(v.on_hand, v.reserved + first.delta.get(s, 0)) for s, v in stock.items()}
    second = inventory.reserve(after, reqs, previous)
    assert second.delta == {} and second.rows == []
    assert second.results == first.results


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 9)), max_size=10))
def test_releasing_then_committing_the_same_holds_never_goes_negative(
    rows: list[tuple[str, int]],
) -> None:
    reserved = {s: sum(q for k, q in rows if k == s) for s in SKUS}
    stock = {s: Stock(reserved[s] + 5, reserved[s]) for s in SKUS}
    for target in (inventory.RELEASED, inventory.COMMITTED):
        delta = inventory.settle(rows, target)
        for sku, (to_reserved, to_on_hand) in delta.items():
            after = Stock(stock[sku].on_hand + to_on_hand, stock[sku].reserved + to_reserved)
            assert 0 <= after.reserved <= after.on_hand


amounts = st.decimals(min_value=1, max_value=80, places=2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y"]), amounts), max_size=15), amounts)
def test_approved_charges_never_exceed_the_credit_limit(
    batch: list[tuple[str, Decimal]], already: Decimal
) -> None:
    limit = Decimal("100")
    orders = [order(OrderStatus.RESERVED, customer=c, total=str(a)) for c, a in batch]
    charges, owed = payment.charges(orders, {"x": already}, limit)
    for customer in ("x", "y"):
        start = already if customer == "x" else Decimal(0)
        approved = sum(
            c.order.total for c in charges if c.approved and c.order.customer_id == customer
        )
        assert owed.get(customer, Decimal(0)) == start + approved
        assert approved == 0 or start + approved <= limit
    decision, rows = payment.charge_outcomes(charges, ["ref"] * sum(c.approved for c in charges))
    assert len({r[0] for r in rows}) == len(rows)  # at most one payment row (charge) per order


statuses = st.sampled_from(list(OrderStatus))


@settings(max_examples=90, deadline=None)
@given(statuses, st.lists(statuses, max_size=8))
def test_only_legal_status_paths_are_applied_and_replays_change_nothing(
    start: OrderStatus, targets: list[OrderStatus]
) -> None:
    o = order(start)
    orders = {o.order_id: o}
    moves = [Move(o.order_id, t, "E") for t in targets]
    path = [start]
    for result in apply_moves(orders, moves):
        if result.applied:
            assert can_transition(path[-1], result.move.target)
            path.append(result.move.target)
    assert orders[o.order_id].status == path[-1]
    replay = apply_moves(orders, moves)
    # the state machine has no cycles: a batch applied again moves nothing it already moved
    assert not any(r.applied and r.move.target in path for r in replay)
