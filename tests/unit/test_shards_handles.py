"""A shard's handles to the other shards of its kind (consumers/base.py `Shards`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ray.exceptions import RayActorError

from consumers import base
from core import registry
from core.settings import Settings


class _Method:
    def __init__(self, answer: Any) -> None:
        self._answer = answer

    def remote(self, *args: Any) -> Any:
        async def result() -> Any:
            if isinstance(self._answer, BaseException):
                raise self._answer
            return self._answer

        return result()


class _Actor:
    def __init__(self, answer: Any) -> None:
        self.reserve_batch = _Method(answer)


def test_a_dead_shard_is_looked_up_again_on_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handle was cached for good: once its actor died and a new one took the name (a
    redeploy, a shard whose start failed), every call kept raising, and the consumer group
    hosting the caller retried the batch for ever."""
    actors = iter([_Actor(RayActorError()), _Actor("new shard's answer")])
    looked_up: list[str] = []

    def get_actor(name: str, namespace: str) -> _Actor:
        looked_up.append(name)
        return next(actors)

    monkeypatch.setattr(registry, "get_actor", get_actor)
    shards = base.Shards(Settings(), lambda i: f"inventory-shard-{i}", 0, object())
    with pytest.raises(RayActorError):
        asyncio.run(shards.call(1, "reserve_batch", []))  # type: ignore[arg-type]
    assert asyncio.run(shards.call(1, "reserve_batch", [])) == "new shard's answer"  # type: ignore[arg-type]
    assert looked_up == ["inventory-shard-1", "inventory-shard-1"]
