"""The shipping actor's timers: each in-flight shipment's next step and when it falls due.

A SHIPPED step is on an order's way to SHIPPED and goes at its time. A DELIVERED step is not:
it may wait up to `slack_s` past its time, and then every DELIVERED step due goes in one batch
of its own, so under load they take a few large transactions instead of one per SHIPPED batch,
and never make a SHIPPED batch larger. Batches hold at most `batch_max` steps. Times are the
caller's `time.monotonic()` values, so a test can drive the clock. An order has at most one
entry per step: scheduling a step that is already waiting changes nothing.
"""

from __future__ import annotations

import heapq
import uuid

from domain import shipping as rules

Entry = tuple[float, str, uuid.UUID]  # (when, step, order id)


class StepQueue:
    def __init__(self, slack_s: float, batch_max: int) -> None:
        self._slack_s = slack_s
        self._batch_max = batch_max
        self._ship: list[Entry] = []
        self._deliver: list[Entry] = []
        self._waiting: set[tuple[str, uuid.UUID]] = set()

    def __len__(self) -> int:
        return len(self._ship) + len(self._deliver)

    def add(self, when: float, step: str, order_id: uuid.UUID) -> None:
        if (step, order_id) in self._waiting:
            return
        self._waiting.add((step, order_id))
        heapq.heappush(
            self._deliver if step == rules.DELIVERED else self._ship, (when, step, order_id)
        )

    def wait_s(self, now: float) -> float | None:
        """Seconds until a step must go (≤ 0: now); None when nothing is pending."""
        times = [h[0][0] + slack for h, slack in self._heaps() if h]
        return min(times) - now if times else None

    def take(self, now: float) -> tuple[list[Entry], list[Entry]]:
        """The SHIPPED steps due at `now`; and the DELIVERED steps due, once the oldest of them
        has waited its slack (each list at most `batch_max`)."""
        ships = self._pop_due(self._ship, now)
        late = self._deliver and self._deliver[0][0] + self._slack_s <= now
        return ships, self._pop_due(self._deliver, now) if late else []

    def _pop_due(self, heap: list[Entry], now: float) -> list[Entry]:
        batch: list[Entry] = []
        while heap and heap[0][0] <= now and len(batch) < self._batch_max:
            entry = heapq.heappop(heap)
            self._waiting.discard((entry[1], entry[2]))
            batch.append(entry)
        return batch

    def _heaps(self) -> tuple[tuple[list[Entry], float], ...]:
        return ((self._ship, 0.0), (self._deliver, self._slack_s))
