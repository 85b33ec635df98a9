"""A consumer's offset commits (consumers.commits.Commits): in the background, one at a time, and
never past a record that was not handled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from consumers.commits import Commits

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def _record(tp: TopicPartition, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"{}", None, 0, 2, ())


class _Broker:
    """Records each commit; `hold` makes the next commits wait, `refuse` makes them fail."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.assigned = {A0, A1, B0}
        self.hold: asyncio.Event | None = None
        self.refuse = False

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if self.refuse:
            raise ConnectionError("broker gone")
        self.commits.append(dict(offsets))

    def commits_of(self) -> Commits:
        return Commits(self.commit, lambda: self.assigned)


async def test_commits_the_next_offset_of_each_partition_handled() -> None:
    broker = _Broker()
    commits = broker.commits_of()
    commits.handled([_record(A0, 4), _record(A0, 7), _record(B0, 0), _record(A0, 5)])
    await commits.flush()
    assert broker.commits == [{A0: 8, B0: 1}]
    assert not commits.pending


async def test_a_commit_does_not_hold_up_the_cycle_and_only_one_is_in_flight() -> None:
    broker = _Broker()
    broker.hold = asyncio.Event()
    commits = broker.commits_of()
    commits.handled([_record(A0, 0)])
    commits.start(0.0)  # returns at once: the broker has not answered
    await asyncio.sleep(0)
    assert commits.pending and broker.commits == []
    commits.handled([_record(A0, 1), _record(A1, 3)])
    commits.start(0.0)  # one in flight: this one waits for it
    broker.hold.set()
    await commits.flush()
    assert broker.commits == [{A0: 1}, {A0: 2, A1: 4}]


async def test_no_commit_more_often_than_asked() -> None:
    broker = _Broker()
    commits = broker.commits_of()
    commits.handled([_record(A0, 0)])
    commits.start(60.0)  # the first one goes
    await commits.flush()
    commits.handled([_record(A0, 1)])
    commits.start(60.0)  # too soon after the first
    await asyncio.sleep(0)
    assert broker.commits == [{A0: 1}]
    assert commits.pending
    await commits.flush()  # but an idle consumer commits what is left at once
    assert broker.commits == [{A0: 1}, {A0: 2}]


async def test_a_failed_commit_goes_with_the_next_one() -> None:
    broker = _Broker()
    broker.refuse = True
    commits = broker.commits_of()
    commits.handled([_record(A0, 9)])
    await commits.flush()  # refused: returns instead of retrying without end
    assert broker.commits == [] and commits.pending and commits.failures == 1
    broker.refuse = False
    commits.handled([_record(A1, 0)])
    await commits.flush()
    assert broker.commits == [{A0: 10, A1: 1}]
    assert commits.failures == 0


async def test_partitions_no_longer_assigned_are_not_committed() -> None:
    broker = _Broker()
    commits = broker.commits_of()
    commits.handled([_record(A0, 0), _record(B0, 5)])
    broker.assigned = {A0}  # a rebalance gave b-0 to another member
    await commits.flush()
    assert broker.commits == [{A0: 1}]
    assert not commits.pending


async def test_cancel_forgets_what_was_not_committed() -> None:
    broker = _Broker()
    broker.hold = asyncio.Event()
    commits = broker.commits_of()
    commits.handled([_record(A0, 0)])
    commits.start(0.0)
    commits.handled([_record(A0, 1)])
    commits.cancel()  # the consumer is rebuilt: it resumes from the broker's last commit
    assert not commits.pending
    broker.hold.set()
    await commits.flush()
    assert broker.commits == []


@pytest.mark.parametrize("offsets", [[3, 1, 2], [0], [5, 5]])
async def test_offsets_never_go_back(offsets: list[int]) -> None:
    broker = _Broker()
    commits = broker.commits_of()
    for offset in offsets:
        commits.handled([_record(A0, offset)])
        await commits.flush()
    committed = [c[A0] for c in broker.commits]
    assert committed == sorted(committed)
    assert committed[-1] == max(offsets) + 1


async def test_a_commit_never_answered_raises_instead_of_waiting_forever() -> None:
    """The loop then rebuilds its consumer (consumers/loop.py `_run`)."""
    broker = _Broker()
    broker.hold = asyncio.Event()  # a client that never answers
    commits = broker.commits_of()
    commits.handled([_record(A0, 0)])
    with pytest.raises(TimeoutError, match="offset commit not answered"):
        await commits.flush(timeout_s=0.05)
    assert commits.pending  # nothing was lost: the offsets are still to commit
    commits.cancel()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_commits_that_keep_failing_raise_once_the_streak_is_too_long() -> None:
    """Each commit failing inside the client (a request timing out behind a group join the
    broker does not answer) returns to the loop, which tries again next cycle; failing for
    longer than the bound raises, so the loop rebuilds its consumer (consumers/loop.py)."""
    broker, clock = _Broker(), _Clock()
    broker.refuse = True
    commits = Commits(broker.commit, lambda: broker.assigned, clock=clock)
    commits.handled([_record(A0, 3)])
    await commits.flush(failing_s=30)  # the first failure: the next cycle tries again
    assert commits.error == "offset commit: ConnectionError: broker gone"
    clock.now += 29
    await commits.flush(failing_s=30)  # still within the bound
    clock.now += 2
    with pytest.raises(TimeoutError, match="offset commits failing for 31s: .*broker gone"):
        await commits.flush(failing_s=30)
    assert commits.pending  # nothing was lost: the offsets are still to commit


async def test_a_success_ends_the_streak_and_clears_the_error() -> None:
    broker, clock = _Broker(), _Clock()
    broker.refuse = True
    commits = Commits(broker.commit, lambda: broker.assigned, clock=clock)
    commits.handled([_record(A0, 3)])
    await commits.flush(failing_s=30)
    clock.now += 29
    broker.refuse = False
    await commits.flush(failing_s=30)
    assert commits.error is None and broker.commits == [{A0: 4}]
    broker.refuse = True
    commits.handled([_record(A0, 4)])
    clock.now += 30
    await commits.flush(failing_s=30)  # a new streak: 0 s long, not 59
    assert commits.failures == 1


async def test_a_failure_of_partitions_given_away_is_no_longer_reported() -> None:
    broker = _Broker()
    broker.refuse = True
    commits = broker.commits_of()
    commits.handled([_record(B0, 0)])
    await commits.flush()
    assert commits.error is not None
    broker.assigned = {A0}  # the rebalance that made the commit fail gave b-0 away
    await commits.flush()
    assert commits.error is None and not commits.pending


async def test_a_commit_refused_for_a_rebalance_waits_for_the_next_assignment() -> None:
    """aiokafka answers a commit of a stale generation (IllegalGeneration) by resetting the
    member's generation and re-joining. A commit sent again before the join completed went out
    with the reset generation, was refused, and reset the join in progress: the group's leader
    re-joined every 3 s and consumed nothing until its client was rebuilt 30 s later (CI,
    2026-12-06). Now a refused commit's offsets wait for the member's next assignment."""
    from aiokafka.errors import CommitFailedError

    joins = 0
    sent: list[dict[TopicPartition, int]] = []
    refuse = True

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        sent.append(dict(offsets))
        if refuse:
            raise CommitFailedError("the group has already rebalanced")

    commits = Commits(commit, lambda: {A0}, lambda: joins)
    commits.handled([_record(A0, 3)])
    await commits.flush()  # refused: the next cycle may try again, not before a new assignment
    assert len(sent) == 1 and commits.pending and commits.failures == 1
    refuse = False
    for _ in range(3):  # cycles while the join is in progress: nothing is sent
        commits.start(0.0)
        await asyncio.sleep(0)
    assert len(sent) == 1
    joins += 1  # the member's next assignment
    await commits.flush()
    assert sent == [{A0: 4}, {A0: 4}] and not commits.pending and commits.failures == 0


async def test_a_commit_lost_to_a_broker_error_is_retried_at_the_next_cycle() -> None:
    broker = _Broker()
    broker.refuse = True
    commits = Commits(broker.commit, lambda: broker.assigned, lambda: 0)
    commits.handled([_record(A0, 0)])
    await commits.flush()
    broker.refuse = False
    await commits.flush()  # no new assignment needed: the broker was gone, not the group
    assert broker.commits == [{A0: 1}]
