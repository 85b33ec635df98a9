"""Follows every accepted order to a terminal status, reading Postgres in bulk.

One query per poll for all outstanding ids (chunked), instead of polling the API per order.
The SHIPPED time comes from `order_events` (the SHIPPED row's `at`), against `orders.created_at`;
so do the times of the stages before it (`benchdb.STAGES`), for the latency of each hop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from adapters import benchdb

TERMINAL = ("DELIVERED", "REJECTED", "DECLINED", "CANCELLED", "REFUNDED")
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    created_at: float
    terminal_at: float
    stages: tuple[float | None, ...] = ()  # times of benchdb.STAGES (shipped last), None: none

    @property
    def shipped_at(self) -> float | None:
        """When it reached SHIPPED (None: it never did)."""
        return self.stages[-1] if self.stages else None

    @property
    def e2e_s(self) -> float | None:
        """Accept → SHIPPED, both stamped by the platform (the same clock)."""
        return None if self.shipped_at is None else self.shipped_at - self.created_at


@dataclass
class Tracker:
    """Accepted order ids in, outcomes out; `poll()` once a second."""

    dsn: str
    outstanding: dict[uuid.UUID, float] = field(default_factory=dict)  # id → accepted (wall)
    outcomes: dict[uuid.UUID, Outcome] = field(default_factory=dict)
    _conn: benchdb.Conn | None = None

    async def open(self) -> None:
        self._conn = await benchdb.connect(self.dsn)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def add(self, order_id: str, accepted_at: float) -> None:
        self.outstanding[uuid.UUID(order_id)] = accepted_at

    @property
    def accepted(self) -> int:
        return len(self.outstanding) + len(self.outcomes)

    async def poll(self) -> int:
        """Move orders that reached a terminal status to `outcomes`; return how many did."""
        assert self._conn is not None, "call open() first"
        ids = list(self.outstanding)
        moved = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for oid, status, created, updated, stages in await benchdb.outcomes(
                self._conn, chunk, TERMINAL
            ):
                times = tuple(None if t is None else _ts(t) for t in stages)
                self.outcomes[oid] = Outcome(status, _ts(created), _ts(updated), times)
                del self.outstanding[oid]
                moved += 1
        return moved

    async def stored(self, principals: Sequence[str]) -> tuple[int, int]:
        """Orders of `principals` stored, and how many of them are not terminal yet: every
        order of a run's customers, also those whose 202 the client never saw (it gave up
        waiting, or the connection failed after the gateway had stored the order)."""
        assert self._conn is not None, "call open() first"
        total, open_, _, _ = await benchdb.burst(self._conn, principals, TERMINAL)
        return total, open_

    async def open_ids(self, principals: Sequence[str]) -> set[uuid.UUID]:
        """Orders of `principals` stored and not terminal yet (202 seen or not)."""
        assert self._conn is not None, "call open() first"
        return await benchdb.open_ids(self._conn, principals, TERMINAL)

    async def maintenance(self) -> int:
        """Vacuums and analyzes Postgres runs right now (`make bench` samples it each second:
        a run that overlaps one can be slower, docs/performance.md)."""
        assert self._conn is not None, "call open() first"
        return await benchdb.maintenance(self._conn)


def _ts(value: datetime) -> float:
    return value.timestamp()
