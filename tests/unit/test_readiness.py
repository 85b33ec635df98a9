"""A consumer group's readiness is its members' (serve_app.readiness): every member is asked,
the group is as healthy as its worst one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core import registry
from core.settings import Settings
from serve_app import readiness
from serve_app.readiness import ReadinessProbe, _bounded


class _Health:
    def __init__(self, answer: dict[str, Any] | BaseException | None) -> None:
        self._answer = answer
        self.options_given: dict[str, Any] = {}

    def options(self, **options: Any) -> _Health:
        self.options_given = options
        return self

    async def remote(self) -> dict[str, Any]:
        assert self.options_given == {"max_task_retries": 0}, "a probe Ray would retry"
        if isinstance(self._answer, BaseException):
            raise self._answer
        if self._answer is None:
            raise ConnectionError("actor died")
        if self._answer == {"hang": True}:  # a member stopped (SIGSTOP): it never answers
            await asyncio.sleep(3600)
        return self._answer


class _Actor:
    def __init__(self, answer: dict[str, Any] | BaseException | None) -> None:
        self.health = _Health(answer)


class _Directory:
    with_ray = True

    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers
        self.forgotten: list[str] = []

    async def get(self, name: str) -> _Actor:
        return _Actor(self._answers[name])

    def forget(self, name: str) -> None:
        self.forgotten.append(name)


def _member(shard: int, status: str = "up", **more: Any) -> dict[str, Any]:
    health = {"status": status, "group": "inventory", "handled": 10 + shard, "lag": shard}
    return {**health, "deadLettered": 0, "lastError": None, "shard": shard, **more}


def _group(answers: dict[str, dict[str, Any] | None], shards: int) -> dict[str, Any]:
    settings = Settings(inventory_shards=shards)
    probe = ReadinessProbe(None, None, _Directory(answers), settings)  # type: ignore[arg-type]
    hosts = [f"inventory-shard-{i}" for i in range(shards)]
    return asyncio.run(probe._group_health("inventory", hosts))


def test_a_single_member_is_the_group() -> None:
    assert _group({"inventory-shard-0": _member(0)}, 1) == _member(0)


def test_several_members_sum_up_and_each_is_listed() -> None:
    answers: dict[str, dict[str, Any] | None] = {
        f"inventory-shard-{i}": _member(i) for i in range(3)
    }
    group = _group(answers, 3)
    assert group["status"] == "up"
    assert (group["handled"], group["lag"], group["deadLettered"]) == (33, 3, 0)
    assert [m["shard"] for m in group["members"]] == [0, 1, 2]


def test_the_worst_member_decides() -> None:
    stalled = _member(1, "degraded", lastError="OperationalError: gone")
    group = _group({"inventory-shard-0": _member(0), "inventory-shard-1": stalled}, 2)
    assert (group["status"], group["lastError"]) == ("degraded", "OperationalError: gone")
    dead = _group({"inventory-shard-0": _member(0), "inventory-shard-1": None}, 2)
    assert dead["status"] == "down"  # a member that does not answer is down, not skipped
    assert dead["members"][1] == {"status": "down", "error": "ConnectionError"}


def test_a_hung_member_is_named_beside_the_others_health(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's probe and each member's had the same 2 s bound: the group's fired first,
    and /ready showed the whole group as `{"status": "down", "error": "TimeoutError"}`. (Run
    with a member bound far below the group's: 1.5 s against 2 s left a stalled box 0.5 s.)"""
    assert readiness._MEMBER_TIMEOUT_S < readiness._PROBE_TIMEOUT_S
    monkeypatch.setattr(readiness, "_MEMBER_TIMEOUT_S", 0.05)
    settings = Settings(inventory_shards=2)
    answers = {"inventory-shard-0": _member(0), "inventory-shard-1": {"hang": True}}
    probe = ReadinessProbe(None, None, _Directory(answers), settings)  # type: ignore[arg-type]
    hosts = ["inventory-shard-0", "inventory-shard-1"]
    group = asyncio.run(_bounded(probe._group_health("inventory", hosts)))  # as /ready does
    assert group["status"] == "down"
    assert group["members"] == [_member(0), {"status": "down", "error": "TimeoutError"}]


def test_an_actor_dead_for_good_is_forgotten() -> None:
    """A probe that meets a dead actor drops its cached handle: the next probe looks the name
    up again and finds the actor created since (it reported `down` until the replica restarted)."""
    from ray.exceptions import RayActorError

    directory = _Directory({"inventory-shard-0": RayActorError()})
    probe = ReadinessProbe(None, None, directory, Settings(inventory_shards=1))  # type: ignore[arg-type]
    group = asyncio.run(_bounded(probe._group_health("inventory", ["inventory-shard-0"])))
    assert group["status"] == "down"
    assert directory.forgotten == ["inventory-shard-0"]


class _Conn:
    async def execute(self, query: str) -> None:
        return None


class _Pool:
    def __init__(self, up: bool) -> None:
        self._up = up

    def connection(self) -> Any:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def conn() -> Any:
            if not self._up:
                raise ConnectionError("Postgres does not answer")
            yield _Conn()

        return conn()


class _Redis:
    def __init__(self, up: bool) -> None:
        self._up = up

    async def ping(self) -> bool:
        if not self._up:
            raise ConnectionError("Redis does not answer")
        return True

    async def mget(self, keys: list[str]) -> list[None]:
        if not self._up:
            raise ConnectionError("Redis does not answer")
        return [None for _ in keys]


def _report(*, pg: bool = True, redis: bool = True, member: Any = "up") -> Any:
    settings = Settings(inventory_shards=1, payment_shards=1)
    answers: dict[str, Any] = {registry.RELAY: {"status": "up", "kafka": "up"}}
    for hosts in registry.members(1, 1).values():
        for host in hosts:
            answers[host] = member if member is None else {"status": member}
    directory = _Directory(answers)
    probe = ReadinessProbe(_Pool(pg), _Redis(redis), directory, settings)  # type: ignore[arg-type]
    return asyncio.run(probe.report())


def test_everything_up_is_up() -> None:
    report = _report()
    assert report.status == "up"
    assert {c["status"] for c in (report.checks or {}).values()} == {"up"}


def test_only_postgres_down_makes_the_gateway_not_ready() -> None:
    """Before: a Redis outage (admission and idempotency fail open), a broker outage (orders
    wait in the outbox) or a dead consumer answered 503 like a Postgres outage, and a balancer
    that reads /ready would take away a gateway that still accepts orders."""
    assert _report(pg=False).status == "down"
    no_redis = _report(redis=False)
    assert no_redis.status == "degraded"
    assert (no_redis.checks or {})["redis"]["status"] == "down"
    dead_member = _report(member=None)
    assert dead_member.status == "degraded"
    assert (dead_member.checks or {})["consumer:inventory"]["status"] == "down"


def test_the_payment_circuit_is_unknown_while_redis_does_not_answer() -> None:
    """It was `down`, which pointed at the payment provider instead of Redis."""
    checks = _report(redis=False).checks or {}
    assert checks["payments"] == {"status": "unknown", "error": "Redis does not answer"}
