"""The (mock) payment provider behind a shared pybreaker circuit breaker.

The breaker's state lives in Redis (`CircuitRedisStorage`) so every payment shard and the
gateway see the same circuit. In dev, admins can make the provider fail (fault injection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pybreaker
from redis import Redis
from redis.exceptions import RedisError

from adapters.redis_clients import sync_client
from domain.errors import Unavailable

log = logging.getLogger(__name__)

BREAKER_NAMESPACE = "payment-provider"
FAULT_KEY = "fault:payment-provider"
STATE_KEY = f"{BREAKER_NAMESPACE}:pybreaker:state"
OPENED_AT_KEY = f"{BREAKER_NAMESPACE}:pybreaker:opened_at"
FAIL_COUNTER_KEY = f"{BREAKER_NAMESPACE}:pybreaker:fail_counter"


class ProviderDown(Exception):
    """The provider did not answer (counted by the breaker)."""


class _Seen(threading.local):
    state: str | None = None  # None: no snapshot, ask Redis
    failures = 0


class SnapshotRedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage that, inside `seen(state, failures)`, answers the state from
    what the caller read asynchronously just before and skips resetting a failure counter that
    is already 0. A call through a closed circuit with no failures counted then makes no Redis
    round trip at all; every write (a failure counted, a transition) still goes to Redis. The
    snapshot is per thread: a call in another thread reads Redis as before."""

    def __init__(self, client: Redis, namespace: str = BREAKER_NAMESPACE) -> None:
        super().__init__(pybreaker.STATE_CLOSED, client, namespace=namespace)
        self._seen = _Seen()

    @contextmanager
    def seen(self, state: str, failures: int) -> Iterator[None]:
        self._seen.state, self._seen.failures = state, failures
        try:
            yield
        finally:
            self._seen.state = None

    @property
    def state(self) -> str:
        if self._seen.state is not None:
            return self._seen.state
        return str(pybreaker.CircuitRedisStorage.state.fget(self))  # type: ignore[attr-defined]

    @state.setter
    def state(self, state: str) -> None:
        self._seen.state = None  # a transition: from now on Redis answers
        pybreaker.CircuitRedisStorage.state.fset(self, state)  # type: ignore[attr-defined]

    def increment_counter(self) -> None:
        self._seen.state = None  # a failure: the counter and the state are Redis's again
        super().increment_counter()

    def _initialize_redis_state(self, state: str) -> None:
        """pybreaker writes the circuit's keys when they are missing, also from `__init__`,
        where it lets a Redis error through: a payment shard restarted while Redis was away
        raised in `__init__`, and Ray does not restart an actor whose `__init__` raised. The keys
        are written again by the first read that finds them missing."""
        try:
            super()._initialize_redis_state(state)
        except RedisError as exc:
            log.warning("breaker state not initialised, Redis unavailable: %s", type(exc).__name__)

    def reset_counter(self) -> None:
        if self._seen.state is not None and self._seen.failures == 0:
            return  # already 0 in Redis when read
        super().reset_counter()


def inline_ok(fault: bool, state: str | None, failures: int) -> bool:
    """Whether a call may run on the event loop with `SnapshotRedisStorage.seen`: no injected
    fault, the circuit closed and no failure counted, so it writes nothing to Redis."""
    return not fault and state in (None, pybreaker.STATE_CLOSED) and failures == 0


class SharedBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker for a state kept in shared storage (every payment shard's breaker
    reads and writes the same Redis keys). pybreaker brings a stale local state up to date by
    entering the stored one as a transition of its own, and entering CLOSED resets the shared
    failure counter: a shard whose breaker last saw the circuit open wiped the failures the
    other shards had counted since another shard closed it. Here the stored state is adopted
    without a transition: the shard that made the transition did its side effects."""

    @property  # type: ignore[override]
    def state(self) -> pybreaker.CircuitBreakerState:
        stored = self.current_state
        if stored != self._state.name:
            with self._lock:
                self._state = self._create_new_state(stored, prev_state=self._state, notify=False)
        return self._state

    @state.setter
    def state(self, state_str: str) -> None:
        pybreaker.CircuitBreaker.state.fset(self, state_str)  # type: ignore[attr-defined]


def make_breaker(
    redis_url: str, fail_max: int, reset_s: float
) -> tuple[pybreaker.CircuitBreaker, SnapshotRedisStorage]:
    """The shared breaker and its storage (for `SnapshotRedisStorage.seen`)."""
    storage = SnapshotRedisStorage(sync_client(redis_url))
    breaker = SharedBreaker(
        fail_max=fail_max,
        reset_timeout=reset_s,
        state_storage=storage,
        name=BREAKER_NAMESPACE,
    )
    return breaker, storage


def provider_call(fault: bool, order_ids: list[str]) -> list[str]:
    """The provider's authorization of a batch (idempotency key = order id), one reference per
    order; raises when it is down."""
    if fault:
        raise ProviderDown("payment provider unavailable (injected fault)")
    return [f"ch_{oid.replace('-', '')[:24]}" for oid in order_ids]


def guarded_call(breaker: pybreaker.CircuitBreaker, fault: bool, order_ids: list[str]) -> list[str]:
    """One call through the breaker for a batch; an open circuit or a failure becomes
    `Unavailable`. One call per batch, not per order: the breaker's state lives in Redis and
    every call through it costs blocking round trips (measured: the payment stage fell behind
    at 300 orders/s with one call per order)."""
    if not order_ids:
        return []
    try:
        refs: list[str] = breaker.call(provider_call, fault, order_ids)
        return refs
    except (pybreaker.CircuitBreakerError, ProviderDown) as exc:
        raise Unavailable(f"payment provider unavailable: {exc}", retry_after_s=5) from None


def open_for(state: str | bytes | None, opened_at: str | bytes | None, reset_s: float) -> int:
    """Seconds the circuit stays open from now (0 when it is closed or may be probed again)."""
    if isinstance(state, bytes):
        state = state.decode()
    if isinstance(opened_at, bytes):
        opened_at = opened_at.decode()
    if state != pybreaker.STATE_OPEN or not opened_at:
        return 0
    remaining = float(opened_at) + reset_s - time.time()
    return int(remaining) + 1 if remaining > 0 else 0
