"""`core.heap`: a started process freezes its objects, raises the young generation's threshold
and counts every collection after that."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core import heap


@pytest.fixture
def restored() -> Iterator[None]:
    """Each test starts with no watcher (an app's start in an earlier test may have settled
    this process); afterwards the collector is as it was: thresholds, watcher, nothing frozen."""
    thresholds, watcher = gc.get_threshold(), heap._pauses
    _unwatch()
    yield
    _unwatch()
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if watcher is not None:
        gc.callbacks.append(watcher)
        heap._pauses = watcher


def _unwatch() -> None:
    if heap._pauses is not None:
        gc.callbacks.remove(heap._pauses)
        heap._pauses = None


def test_settle_freezes_the_start_and_raises_the_young_threshold(restored: None) -> None:
    _, gen1, gen2 = gc.get_threshold()
    heap.settle(12_345)
    assert gc.get_freeze_count() > 1_000  # this process's modules, pytest's own objects
    assert gc.get_threshold() == (12_345, gen1, gen2)
    report = heap.report()
    assert report is not None
    assert report["frozen"] == gc.get_freeze_count()
    assert report["thresholds"] == [12_345, gen1, gen2]


def test_every_collection_after_settle_is_counted_with_its_pause(restored: None) -> None:
    assert heap.report() is None  # not settled: nothing to say
    watcher = heap.settle(10_000)
    before = heap.report()
    assert before is not None
    gc.collect(1)
    gc.collect()
    after = heap.report()
    assert after is not None
    assert after["collections"][1] == before["collections"][1] + 1
    assert after["collections"][2] == before["collections"][2] + 1
    assert after["pauseMsTotal"][2] >= before["pauseMsTotal"][2]
    # the full collection's pause was timed (the report rounds to 0.1 ms: the watcher does not)
    assert 0.0 < watcher.longest_ms[2] <= watcher.total_ms[2]


def test_settling_twice_keeps_one_watcher(restored: None) -> None:
    first = heap.settle(10_000)
    assert heap.settle(20_000) is first
    assert gc.callbacks.count(first) == 1
    assert gc.get_threshold()[0] == 20_000


def test_a_pause_is_recorded_per_generation() -> None:
    pauses = heap.GcPauses()
    pauses("start", {"generation": 0})
    pauses("stop", {"generation": 0, "collected": 0, "uncollectable": 0})
    pauses("start", {"generation": 2})
    pauses("stop", {"generation": 2, "collected": 3, "uncollectable": 0})
    assert pauses.count == [1, 0, 1]
    assert pauses.total_ms[1] == 0.0
    assert pauses.longest_ms[2] == pauses.total_ms[2] >= 0.0
