"""Inventory rules over plain data: all-or-nothing, the hold cap, release, commit, expiry."""

from __future__ import annotations

import uuid

import pytest

from domain import inventory as rules
from domain.inventory import ReserveRequest, Stock
from domain.model import OrderStatus
from domain.sharding import shard_of
from tests.unit.domain_fixtures import created, order


def _req(*lines: tuple[str, int], oid: uuid.UUID | None = None) -> ReserveRequest:
    return ReserveRequest(oid or uuid.uuid4(), "c-1", "p-1", list(lines))


def test_a_request_that_fits_is_held_and_moves_stock_into_reserved() -> None:
    out = rules.reserve({"A": Stock(5, 0)}, [_req(("A", 3))], {})
    assert out.results == [True]
    assert out.delta == {"A": 3}
    assert [r[1:] for r in out.rows] == [("A", "c-1", "p-1", 3)]


def test_a_request_for_more_than_available_is_refused_whole() -> None:
    out = rules.reserve({"A": Stock(5, 0), "B": Stock(1, 0)}, [_req(("A", 1), ("B", 2))], {})
    assert out.results == [False]
    assert out.delta == {} and out.rows == []


def test_available_excludes_what_is_already_reserved() -> None:
    out = rules.reserve({"A": Stock(5, 4)}, [_req(("A", 2))], {})
    assert out.results == [False]


def test_earlier_requests_of_a_batch_count_against_later_ones() -> None:
    out = rules.reserve({"A": Stock(3, 0)}, [_req(("A", 2)), _req(("A", 2)), _req(("A", 1))], {})
    assert out.results == [True, False, True]
    assert out.delta == {"A": 3}


def test_an_unknown_sku_refuses_the_request() -> None:
    assert rules.reserve({"A": Stock(3, 0)}, [_req(("Z", 1))], {}).results == [False]


def test_a_replayed_order_gets_its_earlier_answer_and_holds_nothing_more() -> None:
    oid = uuid.uuid4()
    held = rules.reserve({"A": Stock(3, 0)}, [_req(("A", 1), oid=oid)], {oid: {"HELD"}})
    released = rules.reserve({"A": Stock(3, 0)}, [_req(("A", 1), oid=oid)], {oid: {"RELEASED"}})
    assert held.results == [True] and held.delta == {}
    assert released.results == [False] and released.delta == {}


def test_the_same_order_twice_in_one_batch_is_held_once() -> None:
    oid = uuid.uuid4()
    out = rules.reserve({"A": Stock(10, 0)}, [_req(("A", 2), oid=oid), _req(("A", 2), oid=oid)], {})
    assert out.results == [True, True]
    assert out.delta == {"A": 2}


def test_hold_cap_counts_existing_holds_and_the_batch() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    capped = rules.over_hold_cap([(a, "p"), (b, "p"), (c, "q")], {"p": 1}, cap=2)
    assert capped == {b}


def test_hold_cap_is_per_principal() -> None:
    orders = [(uuid.uuid4(), f"p{i}") for i in range(5)]
    assert rules.over_hold_cap(orders, {}, cap=1) == set()


def test_split_by_shard_groups_lines_by_the_owning_shard() -> None:
    e = created([("SKU-1", 1), ("SKU-2", 2), ("SKU-3", 3)])
    per_shard = rules.split_by_shard([e], 2, skip=set())
    for index, requests in per_shard.items():
        assert all(shard_of(sku, 2) == index for r in requests for sku, _ in r.lines)
    assert sum(len(r.lines) for rs in per_shard.values() for r in rs) == 3


def test_split_by_shard_leaves_out_capped_orders() -> None:
    e = created([("SKU-1", 1)])
    assert rules.split_by_shard([e], 2, skip={e.order_id}) == {}


@pytest.mark.parametrize(
    "items", [None, [], [{"sku": "A"}], [{"sku": "A", "qty": "x"}], [{"sku": "A", "qty": 0}]]
)
def test_unreadable_lines_are_poison(items: object) -> None:
    e = created([("A", 1)]).model_copy(update={"data": {"items": items}})
    with pytest.raises(rules.InvalidLines):
        rules.lines_of(e)


def test_combine_needs_every_shard_to_agree() -> None:
    e1, e2 = created([("A", 1), ("B", 1)]), created([("A", 1)])
    first = [
        ReserveRequest(e1.order_id, "c", "p", [("A", 1)]),
        ReserveRequest(e2.order_id, "c", "p", [("A", 1)]),
    ]
    second = [ReserveRequest(e1.order_id, "c", "p", [("B", 1)])]
    ok = rules.combine([e1, e2], set(), [(first, [True, True]), (second, [False])])
    assert ok == {e1.order_id: False, e2.order_id: True}


def test_combine_refuses_capped_orders_whatever_the_shards_say() -> None:
    e = created([("A", 1)])
    assert rules.combine([e], {e.order_id}, []) == {e.order_id: False}


def test_outcomes_reserve_or_reject_with_the_reason() -> None:
    ok_e, oos_e, cap_e = created([("A", 1)]), created([("A", 1)]), created([("A", 1)])
    ok = {ok_e.order_id: True, oos_e.order_id: False, cap_e.order_id: False}
    decision = rules.outcomes([ok_e, oos_e, cap_e], ok, {cap_e.order_id})
    moves = {m.order_id: m for m in decision.moves}
    assert moves[ok_e.order_id].target == OrderStatus.RESERVED
    emits = moves[ok_e.order_id].emits
    assert emits is not None and emits.type == "StockReserved"
    assert moves[oos_e.order_id].detail == {"reason": rules.OUT_OF_STOCK}
    assert moves[cap_e.order_id].detail == {"reason": rules.TOO_MANY_HOLDS}
    assert all(m.emits is not None for m in decision.moves)


def test_release_returns_reserved_stock_and_keeps_on_hand() -> None:
    assert rules.settle([("A", 2), ("A", 1), ("B", 4)], rules.RELEASED) == {
        "A": (-3, 0),
        "B": (-4, 0),
    }


def test_commit_takes_the_stock_off_hand() -> None:
    assert rules.settle([("A", 2)], rules.COMMITTED) == {"A": (-2, -2)}


def test_settle_refuses_an_unknown_target() -> None:
    with pytest.raises(ValueError):
        rules.settle([("A", 1)], "HELD")


def test_restock_cannot_go_below_reserved() -> None:
    assert rules.set_on_hand(Stock(10, 4), 4) == Stock(4, 4)
    with pytest.raises(ValueError, match="below the reserved 4"):
        rules.set_on_hand(Stock(10, 4), 3)


def test_expiry_cancels_only_unpaid_orders() -> None:
    pending, reserved, paid = (
        order(OrderStatus.PENDING),
        order(OrderStatus.RESERVED),
        order(OrderStatus.PAID),
    )
    orders = {o.order_id: o for o in (pending, reserved, paid)}
    seen = {o.order_id: o.status.value for o in (pending, reserved)}
    seen |= {paid.order_id: "RESERVED", uuid.uuid4(): "PENDING"}  # paid since; gone
    decision = rules.expire(orders, seen)
    assert {m.order_id for m in decision.moves} == {pending.order_id, reserved.order_id}
    assert all(m.target == OrderStatus.CANCELLED for m in decision.moves)
    assert all(m.emits is not None and m.emits.type == "OrderCancelled" for m in decision.moves)


def test_expiry_leaves_an_order_reserved_since_the_sweep_found_it_pending() -> None:
    """A reservation retried past its hold's time (another shard restarting) commits the
    order RESERVED between the sweep's read and its locked cancel: the cancel checked only
    that the status was unpaid and cancelled the order moments after its reservation."""
    reserved = order(OrderStatus.RESERVED)
    decision = rules.expire({reserved.order_id: reserved}, {reserved.order_id: "PENDING"})
    assert decision.moves == []


def test_a_sku_on_two_lines_of_one_order_counts_both_quantities() -> None:
    # found by the property test: each line alone fits, together they would oversell
    out = rules.reserve({"A": Stock(1, 0)}, [_req(("A", 1), ("A", 1))], {})
    assert out.results == [False] and out.delta == {}


def test_an_order_cancelled_before_its_event_came_reserves_nothing() -> None:
    waiting, cancelled = order(OrderStatus.PENDING), order(OrderStatus.CANCELLED)
    events = [
        created([("A", 1)]).model_copy(update={"order_id": o.order_id})
        for o in (cancelled, waiting)
    ]
    orders = {o.order_id: o for o in (cancelled, waiting)}
    assert rules.still_pending(events, orders) == [events[1]]


def test_a_sku_on_two_lines_of_an_event_is_one_line_with_both_quantities() -> None:
    """The gateway merges them; an event from elsewhere (an edited dead letter's replay) may
    not, and a reservation is one row per order and SKU (its primary key)."""
    event = created([("A", 1), ("B", 2), ("A", 3)])
    assert rules.lines_of(event) == [("A", 4), ("B", 2)]
    split = rules.split_by_shard([event], 1, set())
    assert split[0][0].lines == [("A", 4), ("B", 2)]


def test_a_request_with_a_sku_on_two_lines_writes_one_row_per_sku() -> None:
    out = rules.reserve({"A": Stock(5, 0)}, [_req(("A", 1), ("A", 2))], {})
    assert out.results == [True]
    assert out.delta == {"A": 3}
    assert [r[1:] for r in out.rows] == [("A", "c-1", "p-1", 3)]
    refused = rules.reserve({"A": Stock(5, 0)}, [_req(("A", 3), ("A", 3))], {})
    assert refused.results == [False] and refused.rows == []
