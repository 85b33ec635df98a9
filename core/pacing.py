"""Pacing of the pipeline's batch loops (see `Settings.batch_window_ms`)."""

from __future__ import annotations

import asyncio
import time

from core.settings import Settings


async def pace_batch(started: float, size: int, settings: Settings, per_order: int = 1) -> None:
    """`pace` with the platform's settings (`BATCH_WINDOW_MS`, `BATCH_WINDOW_MIN_EVENTS`).

    `per_order`: how many items one order gives this loop, so that "under load" means the same
    number of orders everywhere (the outbox relay sees ~10 rows per order)."""
    await pace(
        started, settings.batch_window_ms, size, settings.batch_window_min_events * per_order
    )


async def pace(started: float, window_ms: int, size: int, min_size: int) -> None:
    """After a batch of `size` items begun at `started` (a `time.monotonic()` reading), wait
    until `window_ms` have passed since then, but only when the batch had at least `min_size`
    items: under load the loop runs at most one batch per window and work that arrives
    meanwhile joins the next one; a lightly loaded loop handles each event at once."""
    if size < min_size:
        return
    spare = window_ms / 1000 - (time.monotonic() - started)
    if spare > 0:
        await asyncio.sleep(spare)
