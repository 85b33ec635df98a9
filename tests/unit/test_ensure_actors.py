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


def _actors(monkeypatch: pytest.MonkeyPatch, after_s: float, of: int = 1) -> None:
    handles = {
        registry.RELAY: _Handle(after_s, {"status": "up"}),
        registry.inventory_shard(0): _Handle(after_s, {"status": "up", "of": of}),
    }
    monkeypatch.setattr(deploy, "create_actors", lambda settings: handles)


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
