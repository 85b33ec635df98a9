"""`make chaos`'s accounting of its own load (cli/load.py, cli/chaos_ledger.py): an order whose
answer the load could not read is a fault, not a silent drop; stored orders the load never got
an id for, beyond those it gave up on, are duplicates; a run that accepted nothing fails."""

from __future__ import annotations

from collections import Counter

import httpx

from cli.chaos_ledger import account
from cli.invariants import Verdict
from cli.load import SteadyLoad
from core.settings import Settings


def _load() -> SteadyLoad:
    return SteadyLoad(Settings(jwt_secret="s" * 32), 1.0, ["SKU-71", "SKU-72"], customers=2)


async def _answer(load: SteadyLoad, response: httpx.Response) -> None:
    transport = httpx.MockTransport(lambda request: response)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        await load._one(client)


async def test_a_202_without_an_order_id_is_counted_and_the_verdict_is_unclean() -> None:
    """The task raised KeyError, was dropped from the pending set unseen, and the order was in
    no count: `accepted=0 gave_up=0 refused={}` with a clean verdict."""
    load = _load()
    await _answer(load, httpx.Response(202, json={"status": "PENDING"}))
    await _answer(load, httpx.Response(202, text="not json"))
    assert load.unreadable == Counter({"KeyError": 1, "JSONDecodeError": 1})
    assert "unreadable={'KeyError': 1, 'JSONDecodeError': 1}" in load.summary()
    load.accepted.append("o-1")  # some other order went through
    verdict = Verdict(accepted=1, terminal=1)
    account(verdict, load, [])
    assert verdict.lost == 2 and not verdict.clean


def test_each_run_has_principals_of_its_own() -> None:
    first, second = _load(), _load()
    assert len(first.principals) == 2 and not set(first.principals) & set(second.principals)


def test_stored_orders_the_load_never_learned_of_are_duplicates_beyond_its_give_ups() -> None:
    load = _load()
    load.accepted.append("o-1")
    load.gave_up = 1
    verdict = Verdict(accepted=1, terminal=1)
    account(verdict, load, ["o-2"])  # the order it gave up on, stored after all
    assert (verdict.lost, verdict.duplicates_effects) == (1, 0)
    verdict = Verdict(accepted=1, terminal=1)
    account(verdict, load, ["o-2", "o-3"])  # and one more: a second order for one request
    assert (verdict.lost, verdict.duplicates_effects) == (1, 1)
    assert any("o-3" in line for line in verdict.details)


def test_a_run_that_accepted_no_order_is_not_clean() -> None:
    verdict = Verdict(accepted=0, terminal=0)
    assert verdict.clean  # nothing wrong found in nothing...
    account(verdict, _load(), [])
    assert not verdict.clean  # ...is not a passed run
