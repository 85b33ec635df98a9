"""Readiness of the gateway's dependencies: Postgres, Redis, the payment circuit and, under Ray,
the outbox relay (with Kafka) and every consumer. Each probe is bounded in time.

The overall status says whether to send orders here: `down` (503) only when the gateway cannot
accept one, that is when Postgres does not answer. Anything else that fails leaves orders
accepted but slowed or held (Redis: admission and idempotency fail open; Kafka, the relay, a
consumer: the orders wait in Postgres's outbox and go on when it is back), so the gateway is
`degraded` (200) and `checks` names the part that is down.

/ready needs no token, and one report pings Postgres and Redis and asks every consumer actor,
holding a request slot up to 2 s: a report serves every caller for `_CACHE_S`, and callers
that come while one is being made wait for that one instead of starting their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import redis.asyncio as aioredis
from ray.exceptions import RayActorError

from adapters import orders_repo
from adapters.orders_repo import Pool
from adapters.provider import OPENED_AT_KEY, STATE_KEY, open_for
from core import registry
from core.settings import Settings
from serve_app.actors import ActorDirectory
from serve_app.admission import RedisOutage
from serve_app.models import Readiness

_PROBE_TIMEOUT_S = 2.0
# long enough that a burst of /ready (a balancer per replica, a script in a loop, anyone on the
# internet) costs one probe a second; short next to any balancer's check interval
_CACHE_S = 1.0
# a group's members are probed inside the group's probe: each within less, so that one hung
# member is reported as such beside the others' health, not the whole group as a timeout
_MEMBER_TIMEOUT_S = 1.5
_COUNTS = ("handled", "deadLettered", "lag")  # summed over a group's members


# what accepting an order cannot do without
_ESSENTIAL = ("postgres",)


def _overall(checks: dict[str, dict[str, Any]]) -> str:
    """`down` when an essential check is, else `up` when every check is, else `degraded`."""
    if any(checks[name].get("status") == "down" for name in _ESSENTIAL):
        return "down"
    return "up" if all(c.get("status") == "up" for c in checks.values()) else "degraded"


def _worst(states: Iterable[str]) -> str:
    """`up` when every state is `up`, `down` when one is, else `degraded`."""
    seen = set(states)
    return "up" if seen <= {"up"} else ("down" if "down" in seen else "degraded")


class ReadinessProbe:
    def __init__(
        self,
        pool: Pool,
        redis: aioredis.Redis,
        actors: ActorDirectory,
        settings: Settings,
        outage: RedisOutage | None = None,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._outage = outage or RedisOutage()
        self._actors = actors
        self._reset_s = settings.breaker_reset_s
        self._members = registry.members(settings.inventory_shards, settings.payment_shards)
        self._last: tuple[float, Readiness] | None = None  # (monotonic time made, report)
        self._making: asyncio.Task[Readiness] | None = None

    async def report(self) -> Readiness:
        """Overall status (`up`, `degraded` or `down`) with one entry per dependency, at most
        `_CACHE_S` old; concurrent callers share one computation."""
        if self._last is not None and time.monotonic() - self._last[0] < _CACHE_S:
            return self._last[1]
        if self._making is None:
            self._making = asyncio.create_task(self._make())
        # shielded: a caller that leaves (its client gone) does not cancel the others' report
        return await asyncio.shield(self._making)

    async def _make(self) -> Readiness:
        try:
            report = await self._probe()
            self._last = (time.monotonic(), report)
            return report
        finally:
            self._making = None

    async def _probe(self) -> Readiness:
        probes: dict[str, Awaitable[dict[str, Any]]] = {
            "postgres": self._postgres(),
            "redis": self._redis_up(),
            "payments": self._payments(),
        }
        if self._actors.with_ray:
            probes["relay"] = self._actor_health(registry.RELAY)
            for group, hosts in self._members.items():
                probes[f"consumer:{group}"] = self._group_health(group, hosts)
        results = await asyncio.gather(*(_bounded(p) for p in probes.values()))
        checks = dict(zip(probes, results, strict=True))
        if "relay" in checks:  # the relay reports the broker; a relay that did not answer, not
            kafka = checks["relay"].get("kafka")  # (the broker is then unknown, not down)
            checks["kafka"] = {"status": kafka} if kafka else {"status": "unknown"}
        if checks["redis"].get("status") != "up":  # the circuit's state is kept in Redis
            checks["payments"] = {"status": "unknown", "error": "Redis does not answer"}
        return Readiness(status=_overall(checks), checks=checks)

    async def _postgres(self) -> dict[str, Any]:
        await orders_repo.ping(self._pool)
        return {"status": "up"}

    async def _redis_up(self) -> dict[str, Any]:
        await self._redis.ping()
        self._outage.recovered()  # Redis answers: the accept path uses it again at once
        return {"status": "up"}

    async def _payments(self) -> dict[str, Any]:
        state, opened = await self._redis.mget([STATE_KEY, OPENED_AT_KEY])
        wait = open_for(state, opened, self._reset_s)
        breaker = {"breaker": "open", "retryAfterS": wait} if wait else {"breaker": "closed"}
        return {"status": "degraded" if wait else "up", **breaker}

    async def _actor_health(self, name: str) -> dict[str, Any]:
        """One call, not retried by Ray: a probe that timed out must not stay queued for an
        actor that is restarting (they would pile up, one per probe, and all run when it is
        back). An actor dead for good is forgotten, so the next probe finds a new one."""
        actor = await self._actors.get(name)
        try:
            health: dict[str, Any] = await actor.health.options(max_task_retries=0).remote()
        except RayActorError:
            self._actors.forget(name)
            raise
        return health

    async def _group_health(self, group: str, hosts: list[str]) -> dict[str, Any]:
        """A group is as healthy as its worst member: a single member's health as it is, or
        the members' totals with each member's health (a host that does not answer is down)."""
        members = await asyncio.gather(
            *(_bounded(self._actor_health(h), _MEMBER_TIMEOUT_S) for h in hosts)
        )
        if len(members) == 1:
            return members[0]
        return {
            "status": _worst(str(m.get("status")) for m in members),
            "group": group,
            **{k: sum(int(m.get(k) or 0) for m in members) for k in _COUNTS},
            "lastError": next((m["lastError"] for m in members if m.get("lastError")), None),
            "members": members,
        }


async def _bounded(
    probe: Awaitable[dict[str, Any]], timeout_s: float = _PROBE_TIMEOUT_S
) -> dict[str, Any]:
    try:
        result = await asyncio.wait_for(probe, timeout_s)
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    return result if isinstance(result, dict) else {"status": "down", "error": "bad answer"}
