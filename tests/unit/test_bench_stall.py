"""bench.stall: the stack is captured once, when no order finished for `after_s` seconds while
some were in the pipeline, and never otherwise."""

from __future__ import annotations

from bench.stall import StallWatch


def _watch(calls: list[int]) -> StallWatch:
    def capture() -> str:
        calls.append(1)
        return "the stack"

    return StallWatch(after_s=5.0, capture=capture)


def test_a_pipeline_that_stops_finishing_orders_is_reported_once() -> None:
    calls: list[int] = []
    watch = _watch(calls)
    watch.step(0.0, 3, 10)  # progress
    for t in (1.0, 2.0, 3.0, 4.0):
        watch.step(t, 0, 10)
    assert watch.report() is None  # 4 s without progress: not yet
    for t in (5.0, 6.0, 7.0):
        watch.step(t, 0, 10)
    assert watch.report() == "the stack"
    assert calls == [1]


def test_progress_or_an_empty_pipeline_is_no_stall() -> None:
    calls: list[int] = []
    watch = _watch(calls)
    for t in range(20):
        watch.step(float(t), 1 if t % 4 == 0 else 0, 10)  # an order every 4 s
    for t in range(20, 40):
        watch.step(float(t), 0, 0)  # nothing in the pipeline: idle, not stalled
    assert watch.report() is None and calls == []


def test_a_capture_that_fails_says_why() -> None:
    def capture() -> str:
        raise ConnectionError("no cluster")

    watch = StallWatch(after_s=1.0, capture=capture)
    watch.step(0.0, 0, 5)
    watch.step(1.0, 0, 5)
    assert watch.report() == "(no report: ConnectionError: no cluster)"
