"""`make chaos`'s load (cli/load.py) retries 5xx, 429 and 409 with the same key; any other answer
ends the order as refused, counted by status, and the verdict (cli/invariants.py) is unclean.
(Here beside the benchmark's tests: the chaos run's own test files belong to others.)"""

from __future__ import annotations

from collections import Counter

import httpx

from cli.invariants import Verdict
from cli.load import SteadyLoad
from core.settings import Settings


def _load() -> SteadyLoad:
    return SteadyLoad(Settings(jwt_secret="s" * 32), 1.0, ["SKU-71", "SKU-72"], customers=2)


async def _place(load: SteadyLoad, answers: list[int]) -> None:
    """One order through `load`, the gateway answering `answers` in turn."""
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        status = queue.pop(0)
        body = {"orderId": "o-1"} if status == 202 else {"error": {"code": "x", "message": "y"}}
        return httpx.Response(status, json=body)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        await load._one(client)


async def test_an_unexpected_4xx_is_counted_and_makes_the_verdict_unclean() -> None:
    load = _load()
    await _place(load, [403])
    assert (load.accepted, load.gave_up, load.refused) == ([], 0, Counter({403: 1}))
    verdict = Verdict(accepted=0, terminal=0)
    verdict.refused.update(load.refused)
    assert not verdict.clean
    assert "refused=1 {403: 1}" in verdict.line()


async def test_rate_limits_and_keys_in_flight_are_retried_and_stay_clean() -> None:
    load = _load()
    await _place(load, [429, 409, 503, 202])
    assert (load.accepted, load.refused) == (["o-1"], Counter())
    verdict = Verdict(accepted=1, terminal=1)
    verdict.refused.update(load.refused)
    assert verdict.clean and "refused=0" in verdict.line()
