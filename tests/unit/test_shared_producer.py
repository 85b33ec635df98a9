"""`SharedProducer`: concurrent users share one start; a failed start closes its client."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from adapters import kafka
from adapters.kafka import SharedProducer


class _Fake:
    def __init__(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


def test_concurrent_users_share_one_start() -> None:
    started: list[_Fake] = []

    async def start() -> AIOKafkaProducer:
        await asyncio.sleep(0.01)  # a connect in flight while the other task asks
        started.append(_Fake())
        return cast(AIOKafkaProducer, started[-1])

    async def scenario() -> tuple[Any, Any, Any]:
        shared = SharedProducer(start)
        first, second = await asyncio.gather(shared.get(), shared.get())
        await shared.reset()
        return first, second, await shared.get()

    first, second, third = asyncio.run(scenario())
    assert first is second is started[0]
    assert started[0].stopped and third is started[1] and len(started) == 2


def test_a_cancelled_start_stops_its_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    class _Slow(_Fake):
        def __init__(self, **_: Any) -> None:
            super().__init__()
            made.append(self)

        async def start(self) -> None:
            await asyncio.sleep(10)

    monkeypatch.setattr(kafka, "AIOKafkaProducer", _Slow)

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(kafka.start_producer("127.0.0.1:1", "test"), 0.05)

    asyncio.run(scenario())
    assert len(made) == 1 and made[0].stopped


def test_a_slow_start_outlives_an_impatient_user() -> None:
    started: list[_Fake] = []

    async def start() -> AIOKafkaProducer:
        await asyncio.sleep(0.05)
        started.append(_Fake())
        return cast(AIOKafkaProducer, started[-1])

    async def scenario() -> Any:
        shared = SharedProducer(start)
        with pytest.raises(TimeoutError):
            await shared.get_within(0.01)
        return await shared.get()  # the same start, not a second one

    assert asyncio.run(scenario()) is started[0] and len(started) == 1
