"""`make chaos` judges each order's final status against what it asked for (cli/invariants.py):
a run plans no expired hold, no refund, and no rejection while stock was there."""

from __future__ import annotations

from cli.invariants import Verdict, _check_outcomes
from cli.load import Placed


def test_only_the_outcomes_an_order_asked_for_pass() -> None:
    placed = {
        "paid": Placed((("SKU-72", 1),), declining=False),
        "declined": Placed((("SKU-72", 2),), declining=True),
        "sold-out": Placed((("SKU-71", 3),), declining=False),
        "expired": Placed((("SKU-72", 1),), declining=False),
        "rejected-with-stock": Placed((("SKU-73", 1),), declining=False),
        "card-ok-but-declined": Placed((("SKU-73", 1),), declining=False),
        "still-going": Placed((("SKU-73", 1),), declining=False),
        "two-one-sold-out": Placed((("SKU-72", 1), ("SKU-71", 2)), declining=False),
    }
    now = {
        "paid": "DELIVERED",
        "declined": "DECLINED",
        "sold-out": "REJECTED",
        "expired": "CANCELLED",
        "rejected-with-stock": "REJECTED",
        "card-ok-but-declined": "DECLINED",
        "still-going": "PAID",  # not final: counted as lost elsewhere, not judged here
        "two-one-sold-out": "REJECTED",  # all or nothing: one of its SKUs sold out
    }
    v = Verdict()
    _check_outcomes(v, now, placed, frozenset({"SKU-71"}))
    assert v.unexpected == 3
    judged = " ".join(v.details)
    for oid in ("expired", "rejected-with-stock", "card-ok-but-declined"):
        assert f"order {oid} " in judged
    assert v.outcomes["DELIVERED"] == 1 and v.outcomes["PAID"] == 1
    assert not v.clean


def test_the_verdict_line_names_every_count() -> None:
    line = Verdict(accepted=3, terminal=3).line()
    for name in ("lost", "oversold", "double_charged", "duplicates_effects"):
        assert f"{name}=0" in line
    assert "unexpected=0" in line and "wrong_effects=0" in line
    assert Verdict(accepted=3, terminal=3).clean
