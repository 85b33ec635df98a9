"""The payment provider behind pybreaker: one breaker call per batch, one reference per order."""

from __future__ import annotations

import pybreaker
import pytest

from adapters.provider import SharedBreaker, guarded_call, open_for
from domain.errors import Unavailable


def _breaker(fail_max: int = 2) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=60)


def test_a_batch_gets_one_reference_per_order_in_order() -> None:
    ids = ["0b7f3f0e-1111-4c4c-9d9d-000000000001", "0b7f3f0e-2222-4c4c-9d9d-000000000002"]
    refs = guarded_call(_breaker(), False, ids)
    assert len(refs) == 2 and refs[0] != refs[1]
    assert all(r.startswith("ch_") for r in refs)
    assert refs == guarded_call(_breaker(), False, ids)  # the order id is the idempotency key


def test_an_empty_batch_does_not_touch_the_breaker() -> None:
    breaker = _breaker(fail_max=1)
    breaker.open()
    assert guarded_call(breaker, True, []) == []


def test_a_failing_batch_counts_once_and_opens_the_circuit_at_fail_max() -> None:
    breaker = _breaker(fail_max=2)
    ids = [f"0b7f3f0e-0000-4c4c-9d9d-00000000000{i}" for i in range(5)]
    with pytest.raises(Unavailable):
        guarded_call(breaker, True, ids)
    assert breaker.fail_counter == 1 and breaker.current_state == pybreaker.STATE_CLOSED
    with pytest.raises(Unavailable):
        guarded_call(breaker, True, ids)
    assert breaker.current_state == pybreaker.STATE_OPEN
    with pytest.raises(Unavailable):  # open: refused without calling the provider
        guarded_call(breaker, False, ids)


def test_open_for_counts_down_from_the_opening() -> None:
    assert open_for(None, None, 10) == 0
    assert open_for(pybreaker.STATE_CLOSED, "0", 10) == 0
    assert open_for(pybreaker.STATE_OPEN, "0", 10) == 0  # long ago: may be probed


@pytest.mark.parametrize("breaker_class", [SharedBreaker, pybreaker.CircuitBreaker])
def test_a_stale_shard_does_not_wipe_the_failures_others_counted(
    breaker_class: type[pybreaker.CircuitBreaker],
) -> None:
    """Two shards share the circuit's storage. Shard B last saw it open; shard A probed it
    closed and then counted 2 failures. B's next call, failing too, found its state stale:
    pybreaker entered CLOSED as a transition of B's own and reset the shared counter to 0 first,
    so the circuit stayed closed after fail_max failures in a row."""
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    a = SharedBreaker(fail_max=3, reset_timeout=60, state_storage=storage)
    b = breaker_class(fail_max=3, reset_timeout=60, state_storage=storage)
    a.open()
    assert b.current_state == pybreaker.STATE_OPEN and b.state.name == pybreaker.STATE_OPEN
    a.close()  # shard A's probe succeeded
    ids = ["0b7f3f0e-0000-4c4c-9d9d-000000000001"]
    for _ in range(2):
        with pytest.raises(Unavailable):
            guarded_call(a, True, ids)
    assert storage.counter == 2
    with pytest.raises(Unavailable):
        guarded_call(b, True, ids)  # shard B's next batch fails too: the third in a row
    if breaker_class is SharedBreaker:
        assert storage.state == pybreaker.STATE_OPEN
    else:  # pybreaker's own sync, for the record
        assert storage.state == pybreaker.STATE_CLOSED and storage.counter == 1
