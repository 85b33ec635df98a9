"""A gateway replica's start waits for the platform's actors for as long as it takes
(cluster/deploy.py, `ensure_actors`): it gave up after 120 s, and Serve, which counts such a
start as failed, gave the deployment up for good after three per replica (DEPLOY_FAILED under
KubeRay when Postgres came back late). A real misconfiguration still stops it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cluster import deploy
from core import registry
from core.settings import Settings


class _Health:
    def __init__(self, after_s: float, answer: dict[str, Any]) -> None:
        self._after_s, self._answer = after_s, answer

    def remote(self) -> Any:
        async def answer() -> dict[str, Any]:
            await asyncio.sleep(self._after_s)
            return self._answer

        return answer()


class _Handle:
    def __init__(self, after_s: float, answer: dict[str, Any]) -> None:
        self.health = _Health(after_s, answer)


def _actors(
    monkeypatch: pytest.MonkeyPatch, after_s: float, of: int = 1, found: int | None = None
) -> list[str]:
    """`create_actors` answering with a relay and a shard of count `of`; the shards found
    running before: none, or one of count `found`. -> the calls of `create_actors`."""
    handles = {
        registry.RELAY: _Handle(after_s, {"status": "up"}),
        registry.inventory_shard(0): _Handle(after_s, {"status": "up", "of": of}),
    }
    created: list[str] = []

    def create(settings: Settings) -> dict[str, _Handle]:
        created.append("created")
        return handles

    running = {} if found is None else {registry.inventory_shard(1): _Handle(0.0, {"of": found})}
    monkeypatch.setattr(deploy, "create_actors", create)
    monkeypatch.setattr(deploy, "found_shards", lambda settings: running)
    return created


def test_actors_slower_than_any_deadline_are_waited_for_and_said_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _actors(monkeypatch, after_s=1.0)  # 20 of the 0.05 s waits: a stalled loop still sees two
    with caplog.at_level(logging.WARNING, logger=deploy.__name__):
        asyncio.run(
            deploy.ensure_actors(
                Settings(jwt_secret="s" * 32, inventory_shards=1, payment_shards=1),
                say_every_s=0.05,
            )
        )
    said = [r.getMessage() for r in caplog.records if r.name == deploy.__name__]
    assert len(said) >= 2 and "actors not all up after" in said[0], said


def test_shards_of_another_count_still_stop_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    _actors(monkeypatch, after_s=0.0, of=2)
    with pytest.raises(RuntimeError, match="shards running with another count"):
        asyncio.run(
            deploy.ensure_actors(
                Settings(jwt_secret="s" * 32, inventory_shards=1, payment_shards=1),
                say_every_s=0.05,
            )
        )


def test_shards_of_another_count_stop_the_start_before_it_creates_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica of a new count (2, a pod during a rollout) beside shards of the old one (3)
    created the shards its count has first: a second owner of some keys, running on after the
    replica refused."""
    created = _actors(monkeypatch, after_s=0.0, of=2, found=3)
    with pytest.raises(RuntimeError, match="shards running with another count"):
        asyncio.run(
            deploy.ensure_actors(
                Settings(jwt_secret="s" * 32, inventory_shards=2, payment_shards=1),
                say_every_s=0.05,
            )
        )
    assert created == []
