"""The audit at the end of a whole `make bench` run (bench/end_audit.py): the stock invariants a
run can break (`adapters.audit`, as `orders chaos` checks them) over every order of the run,
after every phase has drained, and a run that breaks one exits 1 (bench/gate.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import audit, benchdb
from bench import capacity, checks, end_audit, oversell, report, runner
from bench.gate import problems
from bench.mainrun import Load
from bench.workload import Mix
from core.settings import Settings

IDS = ["0b6d3f2e-0000-4000-8000-000000000001", "0b6d3f2e-0000-4000-8000-000000000002"]
HELD = {"order_id": IDS[0], "sku": "SKU-1", "status": "DELIVERED"}
BROKEN = {"sku": "SKU-2", "on_hand": 10, "reserved": 3, "held": 1}


class _Conn:
    async def __aenter__(self) -> _Conn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Db:
    """What the audit reads: the run's order ids, then the `adapters.audit` checks and the
    run's orders not terminal, whose answers are given per call (the last one repeats)."""

    def __init__(
        self, held: list[list[Any]], broken: list[Any], still_open: list[list[Any]]
    ) -> None:
        self.held, self.broken, self.still_open = held, broken, still_open
        self.asked: list[tuple[datetime, str]] = []
        self.audited: list[list[str]] = []
        self.open_asked: list[tuple[datetime, str, Any]] = []

    async def run_open_orders(
        self, conn: object, since: datetime, like: str, terminal: Any
    ) -> list[Any]:
        self.open_asked.append((since, like, terminal))
        return self.still_open.pop(0) if len(self.still_open) > 1 else self.still_open[0]

    async def connect(self, dsn: str) -> _Conn:
        return _Conn()

    async def order_ids(self, conn: object, since: datetime, like: str) -> list[str]:
        self.asked.append((since, like))
        return IDS

    def held_when_finished(self, conn: object, ids: list[str], statuses: Any) -> list[Any]:
        self.audited.append(list(ids))
        return self.held.pop(0) if len(self.held) > 1 else self.held[0]


@contextmanager
def _no_connection(dsn: str) -> Iterator[None]:
    yield None


def _fake(
    monkeypatch: pytest.MonkeyPatch,
    held: list[list[Any]],
    broken: list[Any],
    still_open: list[list[Any]] | None = None,
) -> _Db:
    db = _Db(held, broken, still_open or [[]])
    monkeypatch.setattr(benchdb, "connect", db.connect)
    monkeypatch.setattr(benchdb, "order_ids", db.order_ids)
    monkeypatch.setattr(benchdb, "run_open_orders", db.run_open_orders)
    monkeypatch.setattr(audit, "connect", _no_connection)
    monkeypatch.setattr(audit, "held_when_finished", db.held_when_finished)
    monkeypatch.setattr(audit, "broken_stock", lambda conn: db.broken)
    monkeypatch.setattr(audit, "holds_out_of_step", lambda conn, ids: [])
    return db


async def test_a_hold_left_on_a_finished_order_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = _fake(monkeypatch, [[HELD]], [])
    got = await end_audit.check("dsn", 1000.0, "bench-1", settle_s=0.05, poll_s=0.01)
    assert db.asked[0][1] == "bench-1-%" and db.asked[0][0].timestamp() == 1000.0
    assert db.audited[0] == IDS  # every order of the run, not the main run's alone
    assert (got["orders"], got["held_when_finished"], got["broken_stock"]) == (2, 1, 0)
    assert problems({"end_audit": got}) == ["end of run: 1 holds left on finished orders"]


async def test_a_hold_released_while_the_audit_waits_is_no_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = _fake(monkeypatch, [[HELD], [HELD], []], [])
    got = await end_audit.check("dsn", 1000.0, "bench-1", settle_s=5.0, poll_s=0.01)
    assert len(db.audited) == 3 and got["held_when_finished"] == 0
    assert problems({"end_audit": got}) == []


async def test_reserved_stock_that_is_not_the_open_holds_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake(monkeypatch, [[]], [BROKEN])
    got = await end_audit.check("dsn", 1000.0, "bench-1", settle_s=0.05, poll_s=0.01)
    assert got["broken_stock"] == 1 and "SKU-2" in got["details"][0]
    (found,) = problems({"end_audit": got})
    assert "1 SKUs' stock bookkeeping broken" in found


async def test_the_audit_runs_after_every_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def phase(name: str, value: Any = None) -> Any:
        async def fake(*args: Any, **kw: Any) -> Any:
            calls.append(name)
            if name == "main":
                args[-1]["stock"] = {"oversold": 0}
            return value

        return fake

    for module, name in (
        (checks, "preflight"),
        (checks, "settle"),
        (runner, "_main"),
        (runner, "_saturation"),
    ):
        monkeypatch.setattr(module, name, phase(name.strip("_")))
    monkeypatch.setattr(checks, "background", phase("background", {}))
    monkeypatch.setattr(runner, "_ceilings", phase("ceilings", {}))
    monkeypatch.setattr(runner, "_warm_up", phase("warm_up", {}))
    monkeypatch.setattr(capacity, "measure", phase("capacity", {}))
    monkeypatch.setattr(end_audit, "before", phase("before", frozenset()))
    monkeypatch.setattr(end_audit, "check", phase("end_audit", {"held_when_finished": 0}))
    monkeypatch.setattr(oversell, "begin", phase("begin", oversell.Ledger({})))
    monkeypatch.setattr(oversell, "check", phase("oversell", {}))
    monkeypatch.setattr(report, "machine", lambda: {})
    monkeypatch.setattr(report, "platform_settings", lambda settings: {})
    load = Load("http://127.0.0.1:1", 1, 10.0, 0, 1, Mix(), 1, 0.0, 0.0, 1000.0)
    opts = runner.Options(load=load, baseline=False, out_dir=Path("unused"))
    result = await runner.run(opts, Settings(jwt_secret="s" * 32))
    assert calls[-3:] == ["capacity", "end_audit", "oversell"]
    assert result["end_audit"] == {"held_when_finished": 0}
    assert result["stock"] == {"oversold": 0}  # the main run's audit stays as it was


async def test_stock_broken_before_the_run_is_not_the_runs_finding_unless_it_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SKU left broken by an earlier run (a chaos run that found a bug) failed every later
    `make bench`: a row exactly as it was before the run is reported apart, not as a finding."""
    _fake(monkeypatch, [[]], [BROKEN])
    before = await end_audit.before("dsn")
    got = await end_audit.check("dsn", 1000.0, "bench-1", before, settle_s=0.05, poll_s=0.01)
    assert (got["broken_stock"], got["broken_stock_before"]) == (0, 1)
    assert problems({"end_audit": got}) == []
    _fake(monkeypatch, [[]], [{**BROKEN, "reserved": 4}])  # the run changed it
    got = await end_audit.check("dsn", 1000.0, "bench-1", before, settle_s=0.05, poll_s=0.01)
    assert got["broken_stock"] == 1


async def test_an_order_of_the_run_stored_late_and_never_finished_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each phase decides what it lost at one instant, while the gateway may still store a
    request the load generator gave up on (its 30 s timeout): an order stored after that and
    never finished was no phase's finding. The audit counts every order of the run not
    terminal at the end (read afresh each round, so it need not be among the ids read first)."""
    late = "0b6d3f2e-0000-4000-8000-0000000000ff"
    db = _fake(monkeypatch, [[]], [], [[(late, "ACCEPTED")]])
    got = await end_audit.check("dsn", 1000.0, "bench-1", settle_s=0.05, poll_s=0.01)
    since, like, terminal = db.open_asked[0]
    assert (since.timestamp(), like) == (1000.0, "bench-1-%") and "DELIVERED" in terminal
    assert got["unfinished"] == 1 and late in got["details"][0]
    assert problems({"end_audit": got}) == ["end of run: 1 orders of the run not terminal"]


async def test_an_order_that_finishes_while_the_audit_waits_is_no_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    late = ("0b6d3f2e-0000-4000-8000-0000000000ff", "PAID")
    db = _fake(monkeypatch, [[]], [], [[late], [late], []])
    got = await end_audit.check("dsn", 1000.0, "bench-1", settle_s=5.0, poll_s=0.01)
    assert len(db.open_asked) == 3 and got["unfinished"] == 0
    assert problems({"end_audit": got}) == []


def test_an_audit_that_could_not_run_fails_the_run() -> None:
    (found,) = problems({"end_audit": {"error": "OperationalError: server closed"}})
    assert found == "end of run: the audit could not run (OperationalError: server closed)"
