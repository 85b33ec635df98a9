"""Admission control on the accept path, one Redis round trip for the orders arriving together:
the per-principal rate limit and the payment circuit breaker (open → 503 with Retry-After).
Plus Idempotency-Key handling with Stripe's semantics, scoped per principal."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.exceptions import RedisError

from adapters.group_commit import GroupCommit
from adapters.provider import OPENED_AT_KEY, STATE_KEY, open_for
from domain.errors import InProgress, InvalidInput, RateLimited, Unavailable
from serve_app.models import Accepted

log = logging.getLogger(__name__)
# An in-flight claim outlives any request (client timeouts are seconds), yet frees itself if the
# gateway died mid-request; the durable guarantee is the unique key in Postgres.
_INFLIGHT_TTL_S = 60
# After a Redis command failed (refused, or timed out: serve_app/wiring.py), the accept path
# leaves Redis alone this long, so a Redis that does not answer costs one timeout, not one per
# request and call; the first request after it tries again.
OUTAGE_QUIET_S = 5.0


class RedisOutage:
    """Shared by admission and idempotency: whether the accept path should skip Redis now."""

    def __init__(self, quiet_s: float = OUTAGE_QUIET_S) -> None:
        self._quiet_s = quiet_s
        self._until = 0.0

    def skip(self) -> bool:
        return time.monotonic() < self._until

    def failed(self) -> None:
        self._until = time.monotonic() + self._quiet_s

    def recovered(self) -> None:
        """Redis answered elsewhere (the readiness probe's ping): stop skipping it."""
        self._until = 0.0


# Count each order in its principal's minute window and read the payment breaker, for all the
# orders that arrived while the previous round trip ran, as one command with one reply: a
# pipeline of INCR, EXPIRE, GET, GET cost the gateway four encodes and four parses per order
# (docs/performance.md, fifth round), and one call per order still made redis-py's client ~13 %
# of the replica's CPU at 280 orders/s. KEYS: the orders' window keys, then the breaker's two.
_ADMIT = """
local n = #KEYS - 2
local out = {redis.call('GET', KEYS[n + 1]), redis.call('GET', KEYS[n + 2])}
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  out[i + 2] = count
end
return out
"""
_WINDOW_TTL_S = 120


class Admission:
    def __init__(
        self,
        redis: aioredis.Redis,
        per_minute: int,
        breaker_reset_s: float,
        outage: RedisOutage | None = None,
    ) -> None:
        self._redis = redis
        self._outage = outage or RedisOutage()
        self._per_minute = per_minute
        self._reset_s = breaker_reset_s
        self._admit = redis.register_script(_ADMIT)
        self._batch: GroupCommit[str, tuple[int, Any, Any]] = GroupCommit(self._flush)

    async def _flush(self, keys: list[str]) -> list[tuple[int, Any, Any]]:
        state, opened_at, *counts = await self._admit(
            keys=[*keys, STATE_KEY, OPENED_AT_KEY], args=[_WINDOW_TTL_S]
        )
        return [(int(c), state, opened_at) for c in counts]

    async def close(self) -> None:
        await self._batch.close()

    async def check(self, principal: str) -> None:
        """Raise `RateLimited` (429) or `Unavailable` (503) when the order must not be taken."""
        window = int(time.time() // 60)
        if self._outage.skip():
            return
        try:
            count, state, opened_at = await self._batch.submit(f"ratelimit:{principal}:{window}")
        except RedisError as exc:
            # Fail open: Redis restarting must not stop orders; the payment stage still has
            # its own breaker and Postgres keeps every order durable.
            self._outage.failed()
            log.warning("admission checks skipped, Redis unavailable: %s", type(exc).__name__)
            return
        if count > self._per_minute:
            wait = 60 - int(time.time()) % 60
            raise RateLimited(
                f"rate limit of {self._per_minute} orders per minute reached; retry later", wait
            )
        wait = open_for(state, opened_at, self._reset_s)
        if wait:
            raise Unavailable(
                "payments are temporarily unavailable (circuit open); retry after "
                f"{wait}s; orders already accepted will complete",
                retry_after_s=wait,
            )


class _Stored(BaseModel):
    """An Idempotency-Key's entry in Redis: in flight (no response yet) or done."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["inflight", "done"]
    hash: str
    response: Accepted | None = None
    claim: str | None = None  # in flight: which request holds it (`Claim.token`)


# Free a key only while it still holds this request's claim: a request refused for its body
# (422) or one whose claim expired must not delete another request's claim or recorded answer.
_ABANDON = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """One request's hold on an Idempotency-Key: its Redis key, its body's fingerprint and a
    token of its own, written into the in-flight entry so that only this request frees it."""

    rkey: str
    fingerprint: str
    token: str

    def inflight(self) -> bytes:
        return orjson.dumps({"state": "inflight", "hash": self.fingerprint, "claim": self.token})


class Idempotency:
    """The fast layer of Idempotency-Key (Stripe semantics), in Redis: same key + same body
    replays the first response; different body → 422; first request still running → 409.

    Postgres holds the durable layer (one order per principal and key, in the order's own
    transaction), so a Redis outage or restart degrades this to "no 409", never to duplicates.
    """

    def __init__(
        self, redis: aioredis.Redis, ttl_s: int, outage: RedisOutage | None = None
    ) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._outage = outage or RedisOutage()
        self._abandon = redis.register_script(_ABANDON)
        self._later: set[asyncio.Task[None]] = set()  # writes sent off the request's path

    @staticmethod
    def fingerprint(body: Any) -> str:
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def claim(self, principal: str, key: str, fingerprint: str) -> Claim:
        """This request's claim on `key` (nothing is sent yet: `begin` sends it)."""
        rkey = f"idem:{principal}:{hashlib.sha256(key.encode()).hexdigest()}"
        return Claim(rkey, fingerprint, secrets.token_hex(8))

    async def begin(self, claim: Claim) -> Accepted | None:
        """Claim the key. Returns a stored response to replay, or None to go ahead."""
        if self._outage.skip():
            return None
        try:
            if await self._redis.set(claim.rkey, claim.inflight(), nx=True, ex=_INFLIGHT_TTL_S):
                return None
            raw = await self._redis.get(claim.rkey)
        except RedisError as exc:
            self._outage.failed()
            log.warning("idempotency fast path skipped, Redis unavailable: %s", type(exc).__name__)
            return None
        if raw is None:  # expired between the two calls: claim again
            return await self.begin(claim)
        try:  # Redis is a cache, not a source of truth: what it holds is checked like input
            stored = _Stored.model_validate_json(raw)
        except ValidationError:
            log.warning("unreadable idempotency entry ignored; Postgres decides")
            return None
        if stored.response is None and stored.claim == claim.token:
            # our own claim: the client resent the `SET NX` whose reply a dropped connection
            # lost (redis-py retries a command once on ConnectionError), so the key is ours
            return None
        if stored.response is None:  # whatever its body: it may yet fail and free the key
            raise InProgress("a request with this Idempotency-Key is still in progress; retry")
        if stored.hash != claim.fingerprint:
            raise InvalidInput(
                "Idempotency-Key was already used with a different body; "
                "use a new key for a new order"
            )
        return stored.response

    async def finish(self, claim: Claim, response: Accepted) -> None:
        value = _Stored(state="done", hash=claim.fingerprint, response=response)
        await self._write(self._redis.set(claim.rkey, value.model_dump_json(), ex=self._ttl))

    async def abandon(self, claim: Claim) -> None:
        """The request failed or was refused: free the key for a retry if, and only if, it
        still holds this request's claim (it expires anyway). Safe whether or not the claim's
        `SET NX` ever took effect (a request cancelled while it was sent)."""
        await self._write(self._abandon(keys=[claim.rkey], args=[claim.inflight()]))

    async def _write(self, command: Awaitable[Any]) -> None:
        """Record a key's outcome. While Redis is being skipped (`RedisOutage`) the write is
        still sent, off the request's path: skipped, a claim whose `SET NX` took effect
        unanswered would answer 409 "in progress" for its whole TTL (60 s)."""
        if not self._outage.skip():
            await self._attempt(command)
            return
        task = asyncio.create_task(self._attempt(command))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _attempt(self, command: Awaitable[Any]) -> None:
        try:
            await command
        except RedisError:
            self._outage.failed()
