"""The accept-capacity phase (bench/capacity.py): every try (each number of wrk connections)
keeps its drain in the result, and orders any try left unfinished, or answered 202 and not
stored, fail the run (bench/gate.py), not only those of the faster try."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import capacity, ceiling, runner, wrkrun
from bench.gate import problems
from bench.mainrun import Load
from bench.procs import CpuSampler
from bench.workload import Customer, Mix
from core.settings import Settings

LOAD = Load("http://127.0.0.1:1", 1, 10.0, 0, 1, Mix(), 1, 0.0, 0.0, 1000.0)


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """wrk as if installed: -c64 accepts more than -c32, and the -c32 burst's drain leaves 3
    of its 100 orders unfinished. Returns the connections of each try, in order."""
    asked: list[int] = []

    async def accept_capacity(url: str, people: list[Customer], mix: Mix, **kw: Any) -> Any:
        asked.append(kw["connections"])
        return {"tool": "wrk", "ok_rps": 10.0 * kw["connections"], "p99_ms": 5.0}

    async def drain(dsn: str, principals: list[str], timeout_s: float) -> dict[str, Any]:
        unfinished = 3 if principals[0].endswith("-cap-serve-32-0") else 0
        return {
            "orders": 100,
            "unfinished": unfinished,
            "waited_s": 1.0,
            "burst_completed_per_s": 9.0,
        }

    monkeypatch.setattr(wrkrun, "available", lambda: True)
    monkeypatch.setattr(ceiling, "accept_capacity", accept_capacity)
    monkeypatch.setattr(ceiling, "drain", drain)
    return asked


async def _capacity() -> dict[str, Any]:
    opts = runner.Options(load=LOAD, customers=2, out_dir=Path("unused"))
    return await capacity.measure(opts, Settings(jwt_secret="s" * 32), "t", None, CpuSampler())


async def test_every_try_keeps_its_drain(tries: list[int]) -> None:
    serve = (await _capacity())["serve"]
    assert tries == [32, 64]
    assert serve["ok_rps"] == 640.0 and serve["drain"]["unfinished"] == 0  # the best try's
    assert serve["ok_rps_by_connections"] == {32: 320.0, 64: 640.0}
    by_conns = serve["drain_by_connections"]
    assert {c: d["unfinished"] for c, d in by_conns.items()} == {32: 3, 64: 0}


async def test_orders_left_by_the_slower_try_fail_the_run(tries: list[int]) -> None:
    found = problems({"capacity": await _capacity()})
    assert found == ["accept capacity serve (32 connections): 3 of 100 orders unfinished"]


def test_a_result_with_only_the_best_drain_is_still_checked() -> None:
    older = {"capacity": {"uvicorn": {"ok_rps": 900.0, "drain": {"orders": 9, "unfinished": 2}}}}
    assert problems(older) == ["accept capacity uvicorn (its best try): 2 of 9 orders unfinished"]


async def test_a_try_answering_more_202s_than_it_stored_orders_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tries: list[int]
) -> None:
    """The drain counted stored orders only: 202s without their stored order went unnoticed.
    Each try now compares wrk's answers below 400 (POST /api/orders: its 202s) with the
    orders stored for its customers."""

    async def accept_capacity(url: str, people: list[Customer], mix: Mix, **kw: Any) -> Any:
        tries.append(kw["connections"])
        answered = 104 if kw["connections"] == 64 else 100  # 100 stored by each try
        return {
            "ok_rps": 10.0 * kw["connections"],
            "p99_ms": 5.0,
            "requests": answered + 7,
            "status_errors": 7,  # 429s, 503s: nothing stored, nothing expected
        }

    monkeypatch.setattr(ceiling, "accept_capacity", accept_capacity)
    serve = (await _capacity())["serve"]
    by_conns = serve["drain_by_connections"]
    assert {c: d["not_stored"] for c, d in by_conns.items()} == {32: 0, 64: 4}
    assert serve["drain"]["answered_202"] == 104  # the best try's
    assert (
        "accept capacity serve (64 connections): 4 orders answered 202 and not stored "
        "(104 answered 202, 100 stored)"
    ) in problems({"capacity": {"serve": serve}})


def test_more_orders_stored_than_202s_seen_is_no_finding() -> None:
    """wrk gives up on an answer after its timeout: the gateway may still store that order."""
    assert capacity.not_stored(100, 103) == 0
    assert capacity.not_stored(None, 3) is None  # no wrk summary to count from
