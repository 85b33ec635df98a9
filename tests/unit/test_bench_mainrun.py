"""A tracked run follows every order of its customers (bench/mainrun.py): the 202s the workers
sent last (drained after they ended) are tracked too, and orders stored without a 202 seen are
followed by count and counted lost when not terminal after the grace period."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import pytest

from bench import mainrun
from bench.loadgen import Record, WorkerSpec
from bench.mainrun import Load
from bench.procs import CpuSampler
from bench.tracker import Tracker
from bench.workload import Customer, Mix

PEOPLE = [Customer("bench-t-m-0", "token"), Customer("bench-t-m-1", "token")]


class _Phase:
    """Workers that are done at once and send their records only with the last drain."""

    last: list[Record] = []

    def __init__(self, specs: list[WorkerSpec]) -> None:
        self.cpu_s, self.done, self._joined = 0.0, True, False

    def start(self) -> list[int]:
        return []

    def drain(self) -> list[Record]:
        return list(self.last) if self._joined else []

    def join(self) -> None:
        self._joined = True


class _Tracker(Tracker):
    """Moves no order to terminal; `stored()` answers from `answers` (the last one repeats),
    `open_ids()` with `open_`: the stored orders not terminal."""

    def __init__(self, answers: list[tuple[int, int]], open_: set[uuid.UUID] | None = None) -> None:
        super().__init__("unused")
        self.answers = answers
        self.open_ = open_ if open_ is not None else set()
        self.asked_for: list[list[str]] = []

    async def open_ids(self, principals: Sequence[str]) -> set[uuid.UUID]:
        return set(self.open_)

    async def poll(self) -> int:
        return 0

    async def maintenance(self) -> int:
        return 0

    async def stored(self, principals: Sequence[str]) -> tuple[int, int]:
        self.asked_for.append(list(principals))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _Cpu(CpuSampler):
    def start(self) -> None:
        return None

    def sample(self) -> dict[str, float]:
        return {}


async def _no_tick() -> None:
    return None


def _load(grace_s: float) -> Load:
    return Load("http://127.0.0.1:1", 1, 10.0, 0, 1, Mix(), 1, grace_s, 0.0, 1000.0)


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mainrun, "Phase", _Phase)
    monkeypatch.setattr(mainrun, "_SPAWN_S", 0.0)
    monkeypatch.setattr(mainrun, "_tick", _no_tick)


async def test_the_202s_of_the_last_drain_are_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    now, oid = time.time(), str(uuid.uuid4())
    monkeypatch.setattr(_Phase, "last", [(now, now, now, 202, oid), (now, now, now, 503, "x")])
    tracker = _Tracker([(1, 1)], {uuid.UUID(oid)})
    run = await mainrun.run(_load(0.0), PEOPLE, tracker, _Cpu())
    assert tracker.accepted == 1 and uuid.UUID(oid) in tracker.outstanding
    figures = mainrun.summary(run, tracker)
    assert (figures["offered"], figures["accepted"], figures["lost"]) == (2, 1, 1)


async def test_orders_stored_without_a_202_are_followed_and_counted_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_Phase, "last", [])  # every client timed out: no 202 seen
    tracker = _Tracker([(3, 2)], {uuid.uuid4(), uuid.uuid4()})
    run = await mainrun.run(_load(0.0), PEOPLE, tracker, _Cpu())
    figures = mainrun.summary(run, tracker)
    assert tracker.asked_for[-1] == ["bench-t-m-0", "bench-t-m-1"]
    assert (figures["lost"], figures["stored_without_202"]) == (2, 3)


async def test_lost_counts_each_unfinished_order_once_202_seen_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2 orders answered 202 and never stored, 1 answered 202 and stuck, 3 stuck without a
    202 seen: 6 lost. It was the larger of the two counts (4), which overlap only in part."""
    now = time.time()
    unstored = [str(uuid.uuid4()) for _ in range(2)]
    stuck = uuid.uuid4()
    without_202 = {uuid.uuid4() for _ in range(3)}
    answered = [*unstored, str(stuck)]
    monkeypatch.setattr(_Phase, "last", [(now, now, now, 202, oid) for oid in answered])
    tracker = _Tracker([(4, 4)], {stuck, *without_202})
    run = await mainrun.run(_load(0.0), PEOPLE, tracker, _Cpu())
    assert mainrun.summary(run, tracker)["lost"] == 6


async def test_the_wait_ends_when_every_stored_order_is_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_Phase, "last", [])
    tracker = _Tracker([(3, 2), (3, 1), (3, 0)])
    run = await mainrun.run(_load(60.0), PEOPLE, tracker, _Cpu())
    assert len(tracker.asked_for) == 3
    assert mainrun.summary(run, tracker)["lost"] == 0
