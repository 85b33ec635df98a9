"""Oversell over the whole `make bench` run (bench/oversell.py): the warm-up, the step phase,
the holds and the load points send orders for the scarce SKUs too, but only the main run's were
checked. Stock is read before the first phase, the bench's own restock before the main run is
counted, and at the end every order of the run that shipped is checked against both; a unit
shipped beyond them fails the run (bench/gate.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters import benchdb
from bench import capacity, checks, end_audit, oversell, report, runner, stock
from bench.gate import problems
from bench.mainrun import Load
from bench.workload import SCARCE_SKUS, Mix
from core.settings import Settings

# before the run: SKU-81 has 3 available (5 on hand, 2 held by an earlier run's order)
START = dict.fromkeys(SCARCE_SKUS, (0, 0)) | {"SKU-81": (5, 2), "SKU-15": (1000, 0)}


class _Conn:
    async def __aenter__(self) -> _Conn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _db(monkeypatch: pytest.MonkeyPatch, shipped: dict[str, int]) -> list[tuple[datetime, str]]:
    """Postgres as the ledger reads it: `START`, and `shipped` units by the run's orders.
    Returns what was asked of the shipped units (since, principal pattern)."""
    asked: list[tuple[datetime, str]] = []

    async def connect(dsn: str) -> _Conn:
        return _Conn()

    async def inventory(conn: object) -> dict[str, tuple[int, int]]:
        return dict(START)

    async def run_shipped_units(conn: object, since: datetime, like: str) -> dict[str, int]:
        asked.append((since, like))
        return shipped

    monkeypatch.setattr(benchdb, "connect", connect)
    monkeypatch.setattr(benchdb, "inventory", inventory)
    monkeypatch.setattr(benchdb, "run_shipped_units", run_shipped_units)
    return asked


async def test_units_shipped_by_any_phase_beyond_the_stock_and_its_restock_are_oversold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _db(monkeypatch, {"SKU-81": 25, "SKU-15": 40})
    ledger = await oversell.begin("dsn")
    ledger.restock({"SKU-81": 20})  # make_scarce before the main run: 23 may ship in all
    got = await oversell.check("dsn", ledger, 1000.0, "bench-1")
    assert asked[0][1] == "bench-1-%" and asked[0][0].timestamp() == 1000.0  # every phase's
    assert got["oversold_all_phases"] == 2
    assert got["stock_all_phases"]["oversoldBySku"] == {"SKU-81": 2}
    assert got["stock_all_phases"]["scarceSkus"]["SKU-81"] == {
        "availableAtStart": 3,
        "restockedUnits": 20,
        "shippedUnits": 25,
    }
    assert problems(got) == ["whole run: 2 units oversold (every phase)"]


async def test_units_within_the_stock_and_its_restock_are_not_oversold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _db(monkeypatch, {"SKU-81": 23, "SKU-82": 4})
    ledger = await oversell.begin("dsn")
    ledger.restock({"SKU-81": 20, "SKU-82": 4})
    ledger.restock({"SKU-81": -5})  # a restock that took units away counts the other way
    got = await oversell.check("dsn", ledger, 1000.0, "bench-1")
    assert got["stock_all_phases"]["oversoldBySku"] == {"SKU-81": 5}
    ledger.restock({"SKU-81": 5})
    got = await oversell.check("dsn", ledger, 1000.0, "bench-1")
    assert got["oversold_all_phases"] == 0 and problems(got) == []


async def test_a_check_that_could_not_read_postgres_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def gone(dsn: str) -> _Conn:
        raise OSError("connection refused")

    monkeypatch.setattr(benchdb, "connect", gone)
    got = await oversell.check("dsn", oversell.Ledger(dict(START)), 1000.0, "bench-1")
    assert got["oversold_all_phases"] is None
    assert problems(got) == [
        "whole run: the oversell check could not run (OSError: connection refused)"
    ]


class _Response:
    status = 200

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    """The admin API as `make_scarce` uses it; keeps every PUT."""

    puts: list[tuple[str, Any]] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        pass

    async def __aenter__(self) -> _Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def put(self, path: str, json: Any) -> _Response:
        self.puts.append((path, json))
        return _Response()


async def test_making_the_skus_scarce_reports_the_units_it_added(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The restock before the main run is what the ledger adds to the start's stock: on hand
    set to reserved + units, against on hand as it was."""
    _db(monkeypatch, {})
    monkeypatch.setattr(aiohttp, "ClientSession", _Session)
    conn: Any = _Conn()
    added = await stock.make_scarce("http://127.0.0.1:1", "token", conn, 20)
    assert ("/api/inventory/SKU-81", {"onHand": 22}) in _Session.puts
    assert added == dict.fromkeys(SCARCE_SKUS, 20) | {"SKU-81": 17}  # 5 on hand → 22


async def test_the_ledger_is_read_before_the_first_phase_and_checked_after_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    ledger = oversell.Ledger(dict(START))

    def phase(name: str, value: Any = None) -> Any:
        async def fake(*args: Any, **kw: Any) -> Any:
            calls.append(name)
            if name == "main":
                assert args[-2] is ledger  # where the main run's restock is counted
                args[-1]["stock"] = {"oversold": 0}
            if name == "oversell":
                assert args[1] is ledger and args[3].startswith("bench-")  # every phase's
            return value

        return fake

    for module, name in ((checks, "preflight"), (checks, "settle"), (runner, "_main")):
        monkeypatch.setattr(module, name, phase(name.strip("_")))
    monkeypatch.setattr(runner, "_saturation", phase("saturation"))
    monkeypatch.setattr(checks, "background", phase("background", {}))
    monkeypatch.setattr(runner, "_ceilings", phase("ceilings", {}))
    monkeypatch.setattr(runner, "_warm_up", phase("warm_up", {}))
    monkeypatch.setattr(capacity, "measure", phase("capacity", {}))
    monkeypatch.setattr(end_audit, "before", phase("before", frozenset()))
    monkeypatch.setattr(end_audit, "check", phase("end_audit", {}))
    monkeypatch.setattr(oversell, "begin", phase("begin", ledger))
    monkeypatch.setattr(oversell, "check", phase("oversell", {"oversold_all_phases": 0}))
    monkeypatch.setattr(report, "machine", lambda: {})
    monkeypatch.setattr(report, "platform_settings", lambda settings: {})
    load = Load("http://127.0.0.1:1", 1, 10.0, 0, 1, Mix(), 1, 0.0, 0.0, 1000.0)
    opts = runner.Options(load=load, baseline=False, out_dir=Path("unused"))
    result = await runner.run(opts, Settings(jwt_secret="s" * 32))
    assert calls.index("begin") < calls.index("warm_up") < calls.index("main")
    assert calls[-3:] == ["capacity", "end_audit", "oversell"]
    assert result["oversold_all_phases"] == 0 and result["stock"] == {"oversold": 0}
