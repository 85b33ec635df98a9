"""A table whose maintenance fails for any database error is recorded and the other tables are
maintained all the same; a run that cannot reach Postgres fails every table's. Before, only a
busy lock and pg_partman's own report were caught: a cancelled statement (QueryCanceled, which
pg_partman does not catch) ended the run at the first table, unrecorded, run after run, and the
relay stayed `up` while no partition was made (ADR-012: after 7 days rows go to the default
partitions)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from adapters import retention
from core.settings import Settings


class _Cursor:
    async def fetchone(self) -> dict[str, Any]:
        return {"dropped": [], "created": ["p"], "kept_from": None}


class _Conn:
    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.tried: list[str] = []

    async def execute(self, query: str, params: tuple[Any, ...]) -> _Cursor:
        self.tried.append(params[0])
        if params[0] == self.failing:
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        return _Cursor()


def test_a_cancelled_table_is_recorded_and_the_others_are_maintained() -> None:
    tables = [t.table for t in retention.TABLES]
    conn = _Conn(failing=tables[0])
    state = retention.MaintenanceState()
    for _ in range(2):
        done = asyncio.run(retention.maintain(conn, Settings(), state))  # type: ignore[arg-type]
        assert [m.table for m in done] == tables[1:]
    assert conn.tried == tables * 2
    assert state.failing() == {
        tables[0]: "QueryCanceled: canceling statement due to statement timeout"
    }


def test_a_run_that_cannot_reach_postgres_fails_every_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def unreachable(*args: Any) -> list[retention.Maintained]:
        raise psycopg.OperationalError("connection refused")

    class _Stop(Exception):
        pass

    async def no_wait(seconds: float) -> None:
        raise _Stop

    monkeypatch.setattr(retention, "maintain_dsn", unreachable)
    state = retention.MaintenanceState()
    for _ in range(2):
        with pytest.raises(_Stop):
            asyncio.run(retention.maintenance_loop(Settings(), state, pause=no_wait))
    assert set(state.failing()) == {t.table for t in retention.TABLES}
    assert set(state.failing().values()) == {"no connection: OperationalError"}
