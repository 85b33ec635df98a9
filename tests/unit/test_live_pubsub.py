"""A live status stream gives its pub/sub connection back to the replica's shared Redis pool
however it ends: a subscribe cancelled (the client gone) or a failed first read used to leak
it, and 100 leaks left the replica's Redis client (rate limits, breaker, idempotency) with no
connection."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from serve_app import live


class _PubSub:
    def __init__(self, fail: BaseException | None) -> None:
        self.fail = fail
        self.closed = False

    async def subscribe(self, *channels: str) -> None:
        if self.fail is not None:
            raise self.fail

    async def get_message(self, **kwargs: Any) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True


class _Redis:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.pubsub_ = _PubSub(fail)

    def pubsub(self) -> _PubSub:
        return self.pubsub_


async def _first(redis: _Redis) -> None:
    stream = live.status_stream(
        None,  # type: ignore[arg-type]
        redis,  # type: ignore[arg-type]
        uuid.uuid4(),
        ("DELIVERED", datetime.now(UTC)),
    )
    try:
        await stream.__anext__()
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def test_a_cancelled_subscribe_gives_the_connection_back() -> None:
    redis = _Redis(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_first(redis))
    assert redis.pubsub_.closed


def test_a_failed_first_read_gives_the_connection_back(monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: Any) -> list[Any]:
        raise OSError("postgres went away")

    monkeypatch.setattr(live, "timeline_after", down)
    redis = _Redis()
    with pytest.raises(OSError):
        asyncio.run(_first(redis))
    assert redis.pubsub_.closed


def test_a_stream_that_ends_gives_the_connection_back(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing(*args: Any) -> list[Any]:
        return []

    monkeypatch.setattr(live, "timeline_after", nothing)
    redis = _Redis()
    asyncio.run(_first(redis))  # the order row's final status, then the end
    assert redis.pubsub_.closed


class _FlakyPubSub:
    """Redis down for the first subscribes, then up: counts the waits for a nudge."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.subscribes = 0
        self.nudge_waits = 0

    async def subscribe(self, *channels: str) -> None:
        self.subscribes += 1
        if self.subscribes <= self.failures:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("Redis does not answer")

    async def get_message(self, **kwargs: Any) -> None:
        if self.subscribes <= self.failures:  # redis-py without a subscription
            raise RuntimeError("pubsub connection not set")
        self.nudge_waits += 1

    async def aclose(self) -> None:
        pass


def test_a_stream_opened_while_redis_was_down_subscribes_once_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a failed first subscribe was never tried again, and each later wait for a nudge
    failed (redis-py: no connection) into the bare except, so the stream re-read Postgres every
    2 s for its whole life and never got a nudge."""
    pubsub = _FlakyPubSub(failures=2)
    reads = 0

    async def timeline(*args: Any) -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        if pubsub.nudge_waits < 2:
            return []
        row = {"id": 7, "status": "DELIVERED", "event": "shipping.updated"}
        return [{**row, "at": datetime.now(UTC)}]

    monkeypatch.setattr(live, "timeline_after", timeline)
    monkeypatch.setattr(live, "_RECHECK_S", 0.001)

    class _Redis:
        def pubsub(self) -> _FlakyPubSub:
            return pubsub

    async def all_events() -> list[dict[str, Any]]:
        stream = live.status_stream(
            None,  # type: ignore[arg-type]
            _Redis(),  # type: ignore[arg-type]
            uuid.uuid4(),
            ("RESERVED", datetime.now(UTC)),
            after_id=1,
        )
        return [event async for event in stream]

    events = asyncio.run(asyncio.wait_for(all_events(), 10))
    assert pubsub.subscribes == 3  # two refused, the third taken, none after
    assert pubsub.nudge_waits == 2
    assert [e["id"] for e in events] == ["7"]


def test_a_stream_ends_when_its_token_stops_passing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream outlived its token by up to its 600 s cap: a client whose token expired (or was
    meant to end sooner) kept receiving the order's statuses. It now ends then, and the client
    reconnects with a token that passes."""
    first = [{"id": 1, "status": "PENDING", "event": "OrderCreated", "at": datetime.now(UTC)}]

    async def rows(*args: Any) -> list[Any]:
        return first.copy() if args[2] == 0 else []  # then nothing: the order stays PENDING

    monkeypatch.setattr(live, "timeline_after", rows)
    monkeypatch.setattr(live, "_RECHECK_S", 0.05)

    async def follow(until: float) -> list[dict[str, Any]]:
        stream = live.status_stream(
            None,  # type: ignore[arg-type]
            _Redis(),  # type: ignore[arg-type]
            uuid.uuid4(),
            ("PENDING", datetime.now(UTC)),
            until=until,
        )
        return [event async for event in stream]

    events = asyncio.run(asyncio.wait_for(follow(time.time() + 0.5), 10))
    assert [e["id"] for e in events] == ["1"]
    assert asyncio.run(asyncio.wait_for(follow(time.time() - 1), 10)) == []
