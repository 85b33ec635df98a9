"""Pacing of the pipeline's batch loops: small batches go at once, big ones wait for the window."""

from __future__ import annotations

import asyncio
import time

from core.pacing import pace


def _elapsed(started_ago_s: float, window_ms: int, size: int, min_size: int) -> float:
    async def run() -> float:
        t0 = time.monotonic()
        await pace(t0 - started_ago_s, window_ms, size, min_size)
        return time.monotonic() - t0

    return asyncio.run(run())


def test_a_small_batch_does_not_wait() -> None:
    assert _elapsed(0.0, 200, size=3, min_size=4) < 0.1


def test_a_big_batch_waits_out_the_rest_of_the_window() -> None:
    waited = _elapsed(0.05, 200, size=4, min_size=4)
    assert 0.14 <= waited < 0.5


def test_a_batch_that_took_longer_than_the_window_does_not_wait() -> None:
    assert _elapsed(0.3, 200, size=50, min_size=4) < 0.1


def test_a_zero_window_turns_pacing_off() -> None:
    assert _elapsed(0.0, 0, size=500, min_size=1) < 0.1


def test_pace_batch_counts_the_threshold_in_orders() -> None:
    from core.pacing import pace_batch
    from core.settings import Settings

    settings = Settings(batch_window_ms=200, batch_window_min_events=4)

    async def elapsed(size: int, per_order: int) -> float:
        t0 = time.monotonic()
        await pace_batch(t0, size, settings, per_order=per_order)
        return time.monotonic() - t0

    assert asyncio.run(elapsed(39, per_order=10)) < 0.1  # under 4 orders' worth of rows
    assert asyncio.run(elapsed(40, per_order=10)) >= 0.15
    assert asyncio.run(elapsed(4, per_order=1)) >= 0.15
