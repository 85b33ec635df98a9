"""A shard's lookup of another shard's actor (a call to Ray's GCS) runs off its event loop:
while the GCS is slow (failing over), the loop goes on with its consumer's heartbeats and the
hold sweeps. Before, `Shards` called the blocking `ray.get_actor` on the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from consumers import base
from core import registry
from core.settings import Settings


class _Remote:
    def __init__(self) -> None:
        self.ping = self

    def remote(self, *args: Any) -> Any:
        async def answer() -> str:
            return "pong"

        return answer()


def test_a_slow_lookup_leaves_the_event_loop_free(monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()

    def slow_lookup(name: str, namespace: str) -> _Remote:
        assert released.wait(10), "the loop never ran while the lookup waited"
        return _Remote()

    monkeypatch.setattr(registry, "get_actor", slow_lookup)
    shards = base.Shards(Settings(inventory_shards=2), registry.inventory_shard, 0, object())

    async def run() -> str:
        call = asyncio.ensure_future(shards.call(1, "ping"))
        started = time.monotonic()
        while not released.is_set():  # the loop turns while the lookup blocks its thread
            await asyncio.sleep(0.01)
            if time.monotonic() - started > 0.1:
                released.set()
        return str(await asyncio.wait_for(call, 10))

    assert asyncio.run(run()) == "pong"
