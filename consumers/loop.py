"""The Kafka consumer loop of one consumer group, run inside whichever actor hosts it.

The loop: `getmany` whatever arrived while the previous batch ran (adaptive batching: an idle
group reacts at once, a busy one takes bigger batches) → parse (unparseable → DLQ) → one
handler call (one call per shard) → commit offsets only after the effect is durable.
Infrastructure errors (a database or broker restart, an open circuit) are retried without limit,
so nothing is lost; a message the handler finds wrong is poison at once, one whose unexpected
error repeats after bounded retries; it goes to `<topic>.dlq` saying why, its partition flowing
on. Outside the handler no wait is unbounded. A planned stop drains, then leaves the group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError
from pydantic import ValidationError

from adapters.kafka import client_options, start_producer, stop_quietly
from consumers import routes
from consumers.base import Handler, PoisonMessage
from consumers.commits import Commits
from consumers.deadletter import dead_letter, unparseable
from consumers.latency import record_latency
from consumers.membership import JOIN_DEGRADED_S, Membership, lag_of
from consumers.transient import Poisoned, is_transient, refused_for_good, root
from core.metrics import Metrics
from core.settings import Settings
from domain.events import Envelope

log = logging.getLogger(__name__)
_LAG_EVERY_S = 1.0
_POSITION_WAIT_S = 1.0  # the lag is a report: never what a cycle waits on
_STOP_WAIT_S = 10.0  # a client's stop, when the loop rebuilds it
_CLOSE_WAIT_S = 8.0  # the cycle in flight, at a planned stop
_LAST_COMMIT_S = 3.0  # its last commit
_IDLE_WAIT_MS = 200
_SMALL_BATCH = 64  # below this many records a busy lingering group waits for more
_TRANSIENT_WAIT_S = (0.2, 5.0)  # an infrastructure error: the first wait, doubled up to the cap
_POISON_WAIT_S = 0.2  # a repeating error: this times the attempt (bounded by CONSUMER_MAX_RETRIES)
# Offsets are committed at most once a second under load (each commit is a broker round trip and
# a write to the offsets topic); a crash redelivers at most that much, which the dedupe absorbs.
_COMMIT_EVERY_S = 1.0
# The broker answers a fetch as soon as it has data (fetch_min_bytes=1); this bounds idle polls.
_FETCH_WAIT_MS = 250


class ConsumerLoop:
    """One consumer group member's loop, run inside the actor that owns the group's effects
    (an inventory or payment shard, the shipping or the notification actor, docs/adr/ADR-006);
    `linger_ms` only for a group off an order's way to SHIPPED (`_fetch`)."""

    def __init__(
        self, group: str, handler: Handler, settings: Settings, linger_ms: int = 0
    ) -> None:
        self._settings = settings
        self._group = group
        self._handler = handler
        self._metrics = Metrics()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._handled = 0
        self._dead = 0
        self._lag = 0
        self._lag_at = 0.0
        self._last_error: str | None = None
        self._last_poll = time.monotonic()
        self._ignored = routes.ignored(group)
        self._linger_s = linger_ms / 1000
        self._busy = False  # the last fetch returned records (continuous load)
        self._membership = Membership()
        self._commits = Commits(self._commit_offsets, self._assignment, self._membership.joins)
        self._closing = False
        self._task = asyncio.create_task(self._run())

    def health(self) -> dict[str, Any]:
        joining = self._membership.joining_s()
        stalled = time.monotonic() - self._last_poll > 30 or joining > JOIN_DEGRADED_S
        error = self._last_error or self._commits.error  # commits fail apart from the cycles
        status = "down" if self._task.done() else ("degraded" if stalled or error else "up")
        return {
            "status": status,
            "group": self._group,
            "handled": self._handled,
            "deadLettered": self._dead,
            "lag": self._lag,
            "lastError": error,
            "joiningS": round(joining, 1),  # in a group join for this long (0: not joining)
        }

    async def _start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self._group,
            client_id=f"consumer-{self._group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            max_poll_records=self._settings.consumer_batch_max,
            isolation_level="read_committed",
            **client_options(self._settings),
        )
        self._membership.rebuilt()  # a rebuilt consumer joins as a new member
        self._consumer.subscribe(list(routes.topics(self._group)), listener=self._membership)
        await self._membership.bounded(self._consumer.start(), "start")
        self._producer = await start_producer(self._settings.kafka_bootstrap, f"dlq-{self._group}")

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        await self._consumer.commit(offsets)

    def _assignment(self) -> Iterable[TopicPartition]:
        return self._consumer.assignment() if self._consumer is not None else ()

    async def close(self, timeout_s: float = _CLOSE_WAIT_S) -> None:
        """A planned stop: `drain`, then `leave`."""
        await self.drain(timeout_s)
        await self.leave()

    async def drain(self, timeout_s: float = _CLOSE_WAIT_S) -> None:
        """The first step of a planned stop (`orders deploy --restart` drains every member
        before any leaves: no rebalance moves a partition under a last commit): the loop ends
        after the cycle in flight (cancelled after `timeout_s`: its batch is redelivered,
        deduped), and what was handled is committed."""
        self._closing = True
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._task.cancel()
            except Exception as exc:  # the loop only ends by drain or cancel: report it
                log.warning("consumer %s: loop ended with %r", self._group, exc)
        if not self._task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            try:
                await self._commits.flush(timeout_s=_LAST_COMMIT_S)
            except Exception as exc:  # the next member resumes from the last commit (deduped)
                log.warning("consumer %s: last commit failed: %r", self._group, exc)

    async def leave(self) -> None:
        """The second step: the consumer's stop leaves the group, and the broker hands its
        partitions on at once, not after the session timeout (10 s). Not drained: cut short."""
        if not self._task.done():
            await self.drain(timeout_s=0)  # else the loop would rebuild a member
        await self._stop()

    async def _stop(self) -> None:
        self._commits.cancel()
        for client in (self._consumer, self._producer):
            if client is not None:
                await stop_quietly(client, _STOP_WAIT_S)  # rebuilt either way
        self._consumer = self._producer = None

    async def _run(self) -> None:
        while not self._closing:
            try:
                if self._consumer is None:
                    await self._start()  # then `_closing` again: a drain may have begun
                else:
                    await self._poll_once()
            except Exception as exc:  # broker gone: rebuild clients, resume from last commit
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer %s: %s; reconnecting", self._group, self._last_error)
                await self._stop()
                await asyncio.sleep(1)

    async def _poll_once(self) -> int:
        """One cycle: fetch, handle, commit. Returns the number of records it took."""
        assert self._consumer is not None
        records = await self._fetch()
        if not records:
            await self._commits.flush()  # idle: nothing left uncommitted
            await self._update_lag()  # the last busy cycle's lag must not stay reported
            if not self._membership.joining_s():
                self._last_error = None  # an idle member that fetched and committed recovered
            return 0
        events: list[tuple[ConsumerRecord[Any, Any], Envelope]] = []
        ignored = self._ignored
        for record in records:
            markers = ignored.get(record.topic)
            if markers and record.value is not None and any(m in record.value for m in markers):
                continue  # an event this group has nothing to do with: not even parsed
            try:
                events.append((record, Envelope.from_json(record.value)))
            except (ValidationError, ValueError, TypeError) as exc:
                await self._dead_letter(record, unparseable(exc))
        dead_before = self._dead
        await self._handle(events)
        self._commits.handled(records)
        self._commits.start(_COMMIT_EVERY_S)
        handled = len(events) - (self._dead - dead_before)  # a poison one is counted as dead
        self._handled += handled
        self._metrics.consumed(self._group, handled)
        await self._update_lag()
        self._last_error = None  # a whole cycle worked: whatever failed before has recovered
        return len(records)

    async def _fetch(self) -> list[ConsumerRecord[Any, Any]]:
        """What the background fetcher holds (at once), or what arrives within the idle wait.
        A group on an order's way to SHIPPED never waits for more. A group off it (`linger_ms`,
        the notification group's `NOTIFY_LINGER_MS`) waits that long under continuous load when
        its batch is small: fewer cycles, each a transaction and a publish, leave the CPU to the
        stages an order waits for. An idle group (the previous fetch was empty) never waits."""
        assert self._consumer is not None
        limit = self._settings.consumer_batch_max
        fetch = self._consumer.getmany(timeout_ms=_IDLE_WAIT_MS, max_records=limit)
        batches = await self._membership.bounded(fetch, "a fetch")
        self._membership.check()  # a join that never ends: raise, so the loop rebuilds
        records = [r for part in batches.values() for r in part]
        small = len(records) < min(_SMALL_BATCH, limit)  # a full batch goes on at once
        if records and self._busy and self._linger_s and small:
            await asyncio.sleep(self._linger_s)
            fetch = self._consumer.getmany(timeout_ms=0, max_records=limit - len(records))
            more = await self._membership.bounded(fetch, "a fetch")
            records += [r for part in more.values() for r in part]
        self._busy = bool(records)
        self._last_poll = time.monotonic()
        return records

    async def _handle(self, events: Sequence[tuple[ConsumerRecord[Any, Any], Envelope]]) -> None:
        """The batch as one call; on poison, isolate it message by message."""
        if not events:
            return
        try:
            await self._call_with_retries([(r.topic, e) for r, e in events])
            return
        except Poisoned:
            pass
        for record, event in events:
            try:
                await self._call_with_retries([(record.topic, event)])
            except Poisoned as poison:
                await self._dead_letter(record, poison.reason)
            # one by one a batch may outlast the poll interval: what is done is committed as it
            # goes, not redone by the member that gets the partition if this one is dropped
            self._commits.handled([record])
            self._commits.start(_COMMIT_EVERY_S)

    async def _call_with_retries(self, items: list[tuple[str, Envelope]]) -> None:
        """The handler, retried: an infrastructure error without limit (its wait doubling up to
        a cap), an unexpected one `CONSUMER_MAX_RETRIES` times before the items are poison; a
        `PoisonMessage` (the handler found an event wrong: no order, no valid items) is poison at
        once, since a retry cannot change the event (1,800 such events, each retried with
        waits, once held the inventory group for half an hour). The two waits are apart: an
        outage before an unexpected error's retry does not stretch the latter."""
        attempt, delay = 0, _TRANSIENT_WAIT_S[0]
        while True:
            try:
                await self._handler.handle(items)
                break
            except Exception as exc:
                self._last_error = f"{type(root(exc)).__name__}: {root(exc)}"
                if is_transient(exc):
                    log.warning(
                        "consumer %s: transient error, retrying: %s", self._group, self._last_error
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _TRANSIENT_WAIT_S[1])
                    continue
                poison = root(exc)
                # the event itself is wrong, or too old to be claimed: at once
                if isinstance(poison, PoisonMessage) or refused_for_good(poison):
                    raise Poisoned(f"poison: {type(poison).__name__}: {poison}") from exc
                attempt += 1
                if attempt > self._settings.consumer_max_retries:
                    raise Poisoned(f"handler_error: {type(poison).__name__}: {poison}") from exc
                await asyncio.sleep(_POISON_WAIT_S * attempt)
        # the effect is durable: nothing below may make the batch run again
        self._last_error = None
        record_latency(self._metrics, self._group, items)

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        assert self._producer is not None
        await dead_letter(self._producer, self._group, record, reason)
        self._dead += 1
        self._metrics.dead_lettered(record.topic)

    async def _update_lag(self) -> None:
        """The group's lag over this member's partitions, at most once a second. A report: a
        partition moved away by a rebalance meanwhile (aiokafka then raises from `position` or
        `highwater`) keeps the last figure, it never fails the cycle that handled a batch."""
        assert self._consumer is not None
        if time.monotonic() - self._lag_at < _LAG_EVERY_S:
            return  # position() calls per partition are not free: once a second is enough
        self._lag_at = time.monotonic()
        try:
            lag = await lag_of(self._consumer, _POSITION_WAIT_S)
        except (IllegalStateError, AssertionError) as exc:
            log.info("consumer %s: lag not measured (%s)", self._group, type(exc).__name__)
            return
        self._lag = lag
        self._metrics.lag(self._group, lag)
