"""The stage-latency histogram: how old a batch's events are when their effect is durable."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeVar

from core.metrics import Metrics
from domain.events import Envelope

log = logging.getLogger(__name__)
T = TypeVar("T")
# Events of a batch whose age goes into the histogram: every Ray metric call crosses into the
# core worker, and a batch holds up to CONSUMER_BATCH_MAX events.
_SAMPLES = 8


def spread(items: Sequence[T], n: int) -> Sequence[T]:
    """At most `n` items, evenly spaced over `items` (all of them when there are fewer)."""
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def record_latency(metrics: Metrics, group: str, items: Sequence[tuple[str, Envelope]]) -> None:
    """A batch's `(topic, event)` items, sampled. A report, after the fact: a failure here
    never fails (or repeats) the handled batch."""
    now = datetime.now(UTC)
    try:
        for _, e in spread(items, _SAMPLES):
            metrics.stage_latency(group, (now - e.occurred_at).total_seconds() * 1000)
    except Exception as exc:
        log.warning("consumer %s: stage latency not recorded: %r", group, exc)
