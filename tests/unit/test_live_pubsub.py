"""A live status stream gives its pub/sub connection back to the replica's shared Redis pool
however it ends: a subscribe cancelled (the client gone) or a failed first read used to leak
it, and 100 leaks left the replica's Redis client (rate limits, breaker, idempotency) with no
connection."""

from __future__ import annotations

import asyncio
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
