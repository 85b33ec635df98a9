"""The breaker's storage answered from a snapshot (adapters.provider.SnapshotRedisStorage), on
the real Redis under a namespace of its own: a call through a closed circuit makes no round
trip, every failure and transition still lands in Redis, and other threads read Redis."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pybreaker
import pytest
import redis

from adapters.provider import SnapshotRedisStorage, guarded_call, inline_ok
from core.settings import Settings
from domain.errors import Unavailable

_IDS = ["0b7f3f0e-1111-4c4c-9d9d-000000000001", "0b7f3f0e-2222-4c4c-9d9d-000000000002"]


class _Counting(redis.Redis):
    """The real client, counting the commands it sends."""

    commands = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


@pytest.fixture()
def client(settings: Settings) -> Iterator[_Counting]:
    client = _Counting.from_url(settings.redis_url)
    assert isinstance(client, _Counting)
    yield client
    client.close()


@pytest.fixture()
def namespace(client: _Counting) -> Iterator[str]:
    name = f"payment-provider:test-{uuid.uuid4().hex[:8]}"  # within the platform's keys
    yield name
    client.delete(*(f"{name}:pybreaker:{k}" for k in ("state", "fail_counter", "success_counter")))


def _breaker(storage: SnapshotRedisStorage, fail_max: int = 1) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=60, state_storage=storage)


def test_a_closed_circuit_with_no_failures_calls_without_a_round_trip(
    client: _Counting, namespace: str
) -> None:
    storage = SnapshotRedisStorage(client, namespace)
    breaker = _breaker(storage)
    before = client.commands
    with storage.seen(pybreaker.STATE_CLOSED, 0):
        refs = guarded_call(breaker, False, _IDS)
    assert len(refs) == 2
    assert client.commands == before
    guarded_call(breaker, False, _IDS)  # without a snapshot pybreaker asks Redis, as before
    assert client.commands > before


def test_a_failure_seen_from_a_snapshot_is_counted_in_redis_and_opens_the_circuit(
    client: _Counting, namespace: str
) -> None:
    storage = SnapshotRedisStorage(client, namespace)
    breaker = _breaker(storage, fail_max=1)
    with storage.seen(pybreaker.STATE_CLOSED, 0), pytest.raises(Unavailable):
        guarded_call(breaker, True, _IDS)
    assert client.get(f"{namespace}:pybreaker:state") == b"open"
    with storage.seen(pybreaker.STATE_CLOSED, 0):
        assert storage.state == pybreaker.STATE_CLOSED  # a new snapshot is believed ...
    assert storage.state == pybreaker.STATE_OPEN  # ... and Redis answers outside of one


def test_a_counted_failure_is_reset_in_redis_by_the_next_success(
    client: _Counting, namespace: str
) -> None:
    storage = SnapshotRedisStorage(client, namespace)
    breaker = _breaker(storage, fail_max=3)
    with pytest.raises(Unavailable):
        guarded_call(breaker, True, _IDS)
    assert client.get(f"{namespace}:pybreaker:fail_counter") == b"1"
    with storage.seen(pybreaker.STATE_CLOSED, 1):  # a snapshot that saw the failure
        guarded_call(breaker, False, _IDS)
    assert client.get(f"{namespace}:pybreaker:fail_counter") == b"0"


def test_the_snapshot_belongs_to_the_thread_that_took_it(client: _Counting, namespace: str) -> None:
    storage = SnapshotRedisStorage(client, namespace)
    client.set(f"{namespace}:pybreaker:state", pybreaker.STATE_OPEN)
    seen_elsewhere: list[str] = []
    with storage.seen(pybreaker.STATE_CLOSED, 0):
        worker = threading.Thread(target=lambda: seen_elsewhere.append(storage.state))
        worker.start()
        worker.join(10)
        assert storage.state == pybreaker.STATE_CLOSED
    assert seen_elsewhere == [pybreaker.STATE_OPEN]


@pytest.mark.parametrize(
    ("fault", "state", "failures", "inline"),
    [
        (False, None, 0, True),
        (False, pybreaker.STATE_CLOSED, 0, True),
        (True, pybreaker.STATE_CLOSED, 0, False),
        (False, pybreaker.STATE_OPEN, 0, False),
        (False, pybreaker.STATE_HALF_OPEN, 0, False),
        (False, pybreaker.STATE_CLOSED, 2, False),
    ],
)
def test_only_a_call_that_writes_nothing_runs_inline(
    fault: bool, state: str | None, failures: int, inline: bool
) -> None:
    assert inline_ok(fault, state, failures) is inline
