"""An order page runs under a statement limit of its own (50 s), not the gateway's 10 s: an
admin's status filter (no index on status, so its updates stay HOT) walks the table newest
first until it has a page, longer than 10 s on millions of orders, and every retry of the 503
"retry shortly" failed the same way."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from adapters import orders_repo
from adapters.orders_repo import PageQuery


class _Cursor:
    async def fetchall(self) -> list[Any]:
        return []


class _Conn:
    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute(self, sql: str, params: Any = None) -> _Cursor:
        self.statements.append(sql)
        return _Cursor()


class _Pool:
    def __init__(self) -> None:
        self.conn = _Conn()

    @asynccontextmanager
    async def connection(self) -> Any:
        yield self.conn


def test_the_page_statement_runs_under_its_own_limit_in_the_same_transaction() -> None:
    pool = _Pool()
    query = PageQuery(principal=None, status="REJECTED", customer_id=None, after=None, limit=2)
    asyncio.run(orders_repo.order_page(pool, query))  # type: ignore[arg-type]
    first, page = pool.conn.statements
    assert first == f"SET LOCAL statement_timeout = '{orders_repo.PAGE_STATEMENT_S}s'"
    assert page.startswith("SELECT ") and "o.status = %s" in page
    assert 10 < orders_repo.PAGE_STATEMENT_S < 60  # above the gateway's, below HAProxy's silence
