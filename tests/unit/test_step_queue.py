from __future__ import annotations

import uuid

from actors.step_queue import StepQueue
from domain import shipping as rules

A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))


def _close(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) < 1e-9


def test_nothing_pending_has_no_wait() -> None:
    assert StepQueue(0.25, 10).wait_s(now=5.0) is None


def test_a_shipped_step_goes_at_its_time() -> None:
    q = StepQueue(0.25, 10)
    q.add(1.0, rules.SHIPPED, A)
    assert _close(q.wait_s(now=0.95), 0.05)
    assert q.take(now=0.99) == ([], [])
    assert q.take(now=1.0) == ([(1.0, rules.SHIPPED, A)], [])
    assert len(q) == 0


def test_delivered_steps_wait_their_slack_then_go_together_in_a_batch_of_their_own() -> None:
    q = StepQueue(0.25, 10)
    q.add(1.0, rules.DELIVERED, A)
    q.add(1.1, rules.DELIVERED, B)
    q.add(1.1, rules.SHIPPED, C)
    assert _close(q.wait_s(now=1.0), 0.1)  # the SHIPPED step sets the time, not A
    assert q.take(now=1.1) == ([(1.1, rules.SHIPPED, C)], [])  # A and B are due, not late
    assert _close(q.wait_s(now=1.1), 0.15)  # A's slack runs out at 1.25
    assert q.take(now=1.25) == ([], [(1.0, rules.DELIVERED, A), (1.1, rules.DELIVERED, B)])
    assert len(q) == 0


def test_a_batch_is_bounded_and_the_rest_stays_due() -> None:
    q = StepQueue(0.0, 2)
    for i in range(3):
        q.add(1.0, rules.SHIPPED, uuid.UUID(int=10 + i))
    assert len(q.take(now=1.0)[0]) == 2
    assert q.wait_s(now=1.0) == 0.0
    assert len(q.take(now=1.0)[0]) == 1


def test_a_step_already_waiting_is_not_queued_twice_and_may_come_again_once_taken() -> None:
    q = StepQueue(0.0, 10)
    q.add(1.0, rules.SHIPPED, A)
    q.add(0.5, rules.SHIPPED, A)  # a redelivery resumes what is queued already
    q.add(1.0, rules.DELIVERED, A)  # another step of the same order is its own entry
    assert len(q) == 2
    assert q.take(now=1.0) == ([(1.0, rules.SHIPPED, A)], [(1.0, rules.DELIVERED, A)])
    q.add(2.0, rules.SHIPPED, A)  # a held step put back
    assert len(q) == 1
