"""A consumer's offset commits, in the background of its loop (docs/adr/ADR-013, amendment)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

log = logging.getLogger(__name__)
# Longer than one request of the client (aiokafka's request_timeout_ms, 40 s) and its retry:
# past it the client is not coming back by itself.
COMMIT_TIMEOUT_S = 60.0
# Commits that have failed for this long in a row (each answered, or timed out and retried by
# the next cycle) mean a member that cannot rejoin its group: longer than a rebalance takes
# here (a member's session and rebalance timeouts are aiokafka's 10 s; 7–22 s measured).
FAILING_FOR_S = 30.0


class Commits:
    """The offsets of handled records, committed in the background: a cycle goes on to its next
    fetch instead of waiting for the broker's answer. One commit at a time, each naming the
    offsets it commits (never the consumer's position, which may be ahead of what was handled),
    and only of partitions still assigned. A failed commit's offsets go with the next one."""

    def __init__(
        self,
        commit: Callable[[dict[TopicPartition, int]], Awaitable[None]],
        assigned: Callable[[], Iterable[TopicPartition]],
        assignments: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._commit = commit
        self._assigned = assigned
        # how many assignments the member has had (Membership.joins): a commit refused
        # because the group rebalanced waits for the next one. Sent before it, with the
        # generation aiokafka reset on the refusal, it was refused again and reset the
        # generation of the join in progress: the leader re-joined every 3 s, consuming
        # nothing, until the 30 s of failed commits rebuilt its client (CI, 2026-12-06)
        self._assignments = assignments
        self._refused_in: int | None = None
        self._handled: dict[TopicPartition, int] = {}
        self._sent: dict[TopicPartition, int] = {}  # the highest offset sent per partition
        self._task: asyncio.Task[None] | None = None
        self._at = 0.0
        self._clock = clock
        self._failing_since: float | None = None  # the first failure of the current streak
        self.failures = 0
        self.error: str | None = None  # the last failure, until a commit succeeds

    def handled(self, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        """Records whose effects are durable: their offsets may be committed."""
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            self._handled[tp] = max(self._handled.get(tp, 0), r.offset + 1)

    @property
    def _in_flight(self) -> asyncio.Task[None] | None:
        """The commit the broker has not answered yet, if any."""
        task = self._task
        return task if task is not None and not task.done() else None

    @property
    def pending(self) -> bool:
        return bool(self._handled) or self._in_flight is not None

    def start(self, every_s: float) -> None:
        """Start a commit of what was handled, unless one is in flight or the last started less
        than `every_s` ago (each commit is a broker round trip)."""
        if self._in_flight is not None:
            return
        if not self._handled or time.monotonic() - self._at < every_s:
            return
        if self._refused_in is not None and self._assignments() == self._refused_in:
            return  # the group rebalanced: nothing is sent before the member's next assignment
        assigned = set(self._assigned())
        offsets = {
            tp: o
            for tp, o in self._handled.items()
            if tp in assigned and o > self._sent.get(tp, -1)
        }
        self._handled = {}
        self._sent.update(offsets)
        self._at = time.monotonic()
        if offsets:
            self._task = asyncio.create_task(self._send(offsets))
        else:  # what failed belonged to partitions given away since: nothing of ours is failing
            self._failing_since, self.error = None, None

    async def flush(
        self, timeout_s: float = COMMIT_TIMEOUT_S, failing_s: float = FAILING_FOR_S
    ) -> None:
        """Commit everything handled so far and wait for the broker's answer. A commit the
        client has not answered within `timeout_s`, or commits that have all failed for
        `failing_s` (docs/reliability.md: a member stuck in a group join), raise
        `TimeoutError`: the loop then rebuilds its consumer instead of waiting on a client that
        may never recover by itself."""
        while self.pending:
            await self._answer(timeout_s)
            self.start(0.0)
            await self._answer(timeout_s)
            if self.failures and self._handled:
                since = self._failing_since
                if since is not None and self._clock() - since >= failing_s:
                    raise TimeoutError(
                        f"offset commits failing for {self._clock() - since:.0f}s: {self.error}"
                    )
                return  # the broker refused: the next cycle tries again

    async def _answer(self, timeout_s: float) -> None:
        if (task := self._in_flight) is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"offset commit not answered in {timeout_s:.0f}s") from None

    async def _send(self, offsets: dict[TopicPartition, int]) -> None:
        sent_in = self._assignments()
        try:
            await self._commit(offsets)
            self.failures, self._failing_since, self.error = 0, None, None
            self._refused_in = None
        except Exception as exc:  # a broker restart or a rebalance: retried with the next one
            if isinstance(exc, CommitFailedError):
                self._refused_in = sent_in
            self.failures += 1
            self.error = f"offset commit: {type(exc).__name__}: {exc}"
            if self._failing_since is None:
                self._failing_since = self._clock()
            log.warning(
                "offset commit failed, retried with the next: %s: %s", type(exc).__name__, exc
            )
            for tp, offset in offsets.items():
                self._handled[tp] = max(self._handled.get(tp, 0), offset)
                self._sent[tp] = -1  # not committed: may go again

    def cancel(self) -> None:
        """Forget everything (the consumer is rebuilt and resumes from the last commit)."""
        if self._task is not None:
            self._task.cancel()
        self._task, self._handled, self._sent = None, {}, {}
        self.failures, self._failing_since, self.error = 0, None, None
        self._refused_in = None
