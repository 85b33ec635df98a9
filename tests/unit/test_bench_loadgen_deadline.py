"""The load generator's timeout covers opening the connection (bench/http1.py), and a request
still unanswered when a worker ends is recorded as a client error, not dropped
(bench/loadgen.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bench import loadgen
from bench.http1 import Http1Client
from bench.loadgen import ABANDONED, WorkerSpec, _Worker
from bench.workload import Customer


async def test_the_timeout_covers_the_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def never_connects(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    monkeypatch.setattr(loop, "create_connection", never_connects)
    client = Http1Client("http://127.0.0.1:9", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.request(b"GET", b"/health"), 3.0)
    assert time.monotonic() - started < 2.5  # the client's own 0.2 s, not the test's 3 s


class _Hanging:
    """A client whose requests never answer (and ignore their timeout)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        pass

    async def request(self, *args: Any) -> tuple[int, bytes]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass


class _Out:
    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    def put(self, item: tuple[str, Any]) -> None:
        self.items.append(item)


async def test_requests_pending_at_the_end_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadgen, "Http1Client", _Hanging)
    spec = WorkerSpec(
        index=0,
        base_url="http://127.0.0.1:9",
        path="/api/orders",
        start_at=time.time(),
        duration_s=0.2,
        rate=10.0,
        timeout_s=0.1,
        people=(Customer("c-0", "token"),),
    )
    out = _Out()
    await _Worker(spec, out).run()  # type: ignore[arg-type]  # only `put` is used
    records = [r for kind, batch in out.items if kind == "records" for r in batch]
    assert len(records) == 2  # 0.2 s at 10/s, neither answered
    assert {(r[3], r[4]) for r in records} == {(0, ABANDONED)}
