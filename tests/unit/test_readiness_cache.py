"""/ready needs no token, and each report pinged Postgres and Redis and asked every consumer
actor (serve_app/readiness.py), each call able to hold a request slot up to 2 s. A report now
serves every caller for about a second, and callers that come while one is made share it."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest

from core.settings import Settings
from serve_app import readiness
from serve_app.readiness import ReadinessProbe


class _Conn:
    async def execute(self, query: str) -> None:
        return None


class _Pool:
    """Postgres that answers after a while, counting the pings."""

    def __init__(self) -> None:
        self.pings = 0

    def connection(self) -> Any:
        @asynccontextmanager
        async def conn() -> Any:
            self.pings += 1
            await asyncio.sleep(0.05)
            yield _Conn()

        return conn()


class _Redis:
    async def ping(self) -> bool:
        return True

    async def mget(self, keys: list[str]) -> list[None]:
        return [None for _ in keys]


class _NoRay:
    with_ray = False


def _probe() -> tuple[ReadinessProbe, _Pool]:
    pool = _Pool()
    probe = ReadinessProbe(pool, _Redis(), _NoRay(), Settings())  # type: ignore[arg-type]
    return probe, pool


async def test_concurrent_callers_share_one_probe_and_it_serves_for_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readiness, "_CACHE_S", 60.0)  # a stalled box takes no second from it
    probe, pool = _probe()
    reports = await asyncio.gather(*(probe.report() for _ in range(20)))
    assert pool.pings == 1
    assert {r.status for r in reports} == {"up"}
    assert await probe.report() is reports[0]  # within the second: the same report
    assert pool.pings == 1


async def test_a_report_older_than_the_cache_is_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readiness, "_CACHE_S", 0.01)
    probe, pool = _probe()
    await probe.report()
    await asyncio.sleep(0.02)
    await probe.report()
    assert pool.pings == 2


async def test_a_caller_that_leaves_does_not_cancel_the_others_report() -> None:
    probe, pool = _probe()
    first = asyncio.create_task(probe.report())
    second = asyncio.create_task(probe.report())
    await asyncio.sleep(0.01)
    first.cancel()  # its client went away mid-probe
    report = await asyncio.wait_for(second, 5)
    assert report.status == "up" and pool.pings == 1
    with pytest.raises(asyncio.CancelledError):
        await first
