"""The platform's Redis clients: every command has a deadline.

Redis holds nothing an order needs to go on: rate limits, idempotency's fast path, the payment
breaker's shared state, dev fault flags and live status. So a Redis that stops answering
without closing its connections (paused, partitioned) must cost a bounded wait, after which
each caller goes on without it (fails open) instead of holding its event loop, its order rows
or its request. redis-py's own default waits 5 s per attempt and retries.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 2.0

# What the platform's Redis user may reach (its ACL in cluster/services.sh, docker-compose.yml and
# k8s/infra/redis.yaml): the key prefixes of idempotency, rate limits, dev fault flags and the
# payment breaker, and the live status channels. Nothing else: in Kubernetes the same Redis
# holds the Ray GCS's tables (`RAY*`), which the platform's password must not reach.
KEY_PREFIXES = ("idem:", "ratelimit:", "fault:", "payment-provider:")
CHANNEL_PREFIXES = ("order-status:",)
ACL_RIGHTS = " ".join(
    [*(f"~{p}*" for p in KEY_PREFIXES), "resetchannels", *(f"&{p}*" for p in CHANNEL_PREFIXES)]
)
# ... and its commands: no administrative or dangerous one (CONFIG, KEYS, FLUSHALL...), nor the
# two that list key names without naming a key, which the key patterns above cannot bound
# (redis/redis#8152): the GCS's `RAY*` names in Kubernetes. The platform uses neither.
ACL_COMMANDS = "+@all -@admin -@dangerous -scan -randomkey"


def _deadline() -> dict[str, Any]:
    """Every client's options: the deadline of a connect and of a command, and one retry of a
    command whose connection failed (a pooled connection that a Redis restart closed). Not of
    one that timed out: Redis may have run it, and a resent INCR (a rate limit, the breaker's
    failure count) would count twice; the caller goes on without Redis instead."""
    return {
        "socket_timeout": REDIS_TIMEOUT_S,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }


def async_client(url: str, *, decode_responses: bool = True) -> aioredis.Redis:
    return aioredis.from_url(url, decode_responses=decode_responses, **_deadline())


def sync_client(url: str) -> redis.Redis:
    """For pybreaker's storage (blocking: called in a thread, or only when no command is due)."""
    return redis.Redis.from_url(url, **_deadline())


async def flags(client: aioredis.Redis, keys: list[str], what: str) -> list[str | None]:
    """The values of `keys` (dev fault flags), all None when Redis does not answer: a fault
    nobody can read is not injected."""
    if not keys:
        return []
    try:
        values = await client.mget(keys)
    except RedisError as exc:
        log.warning("%s unread, Redis unavailable (%s): taken as unset", what, type(exc).__name__)
        return [None] * len(keys)
    return [v.decode() if isinstance(v, bytes) else v for v in values]
