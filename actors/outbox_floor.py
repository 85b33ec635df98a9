"""Where the outbox relay's next take starts: above a floor below which every row is gone.

The relay deletes what it publishes, lowest ids first. Postgres removes a deleted row's index
entry only once no snapshot can see the row; while a session holds an older snapshot (an
autoanalyze of a big table for 10–20 s, a report query for as long as it runs) a scan from the
lowest id walks every entry deleted since, and the relay's takes grew from ~1 ms to 100–550
ms (docs/performance.md). A scan from the highest id taken would skip rows of transactions that
drew a lower id and committed later (4 accept flushers and the stage actors commit
concurrently): those rows must still be found, and before any later event of their order.

The proof that lets the floor rise (migration 0012: a writer has its xid before it draws an
outbox id). Take k's statement took snapshot S_k, took rows up to id M_k and then got its own
xid X_k, so every xid handed out before S_k is below X_k. A row with an id ≤ M_k that S_k did
not show was drawn before M_k's row, whose transaction had committed before S_k; so its writer
had its xid before S_k, below X_k. (Not S_k's `xmax`: that is one above the latest *completed*
xid, and a writer that got its xid after it but before S_k is above it; the first version
used it, and its check below the floor found such a row within minutes at 400 orders/s.) A
later take j whose snapshot has `xmin ≥ X_k` sees every such writer ended (a running writer
below X_k would be j's `xmin` or below it), and if j took everything visible from the old
floor up to M_k (fewer rows than its limit, or rows past M_k), every row ≤ M_k is deleted once
j commits: the floor becomes M_k. Only transactions with an xid hold it back (a read-only report
or an analyze do not); a long writing transaction does, as it must. The relay looks below the
floor every `RECHECK_S` or less often (there should be nothing: a row is found only if another
process locked rows and rolled back); if it finds one, `reset` drops the floor to 0 and the
next take scans everything.
"""

from __future__ import annotations

from typing import NamedTuple

from adapters.outbox import Taken

RECHECK_S = 30.0
RECHECK_SHARE = 100  # the check waits at least this many times its own last duration


class _Fence(NamedTuple):
    max_id: int  # the floor, once the writers below `xid` have ended
    xid: int


class ScanFloor:
    def __init__(self) -> None:
        self.floor = 0
        self._fence: _Fence | None = None

    def committed(self, taken: Taken, limit: int) -> None:
        """Take `taken` (scanned from `self.floor`, at most `limit` rows) has committed."""
        fence = self._fence
        complete_to = taken.max_id if len(taken.rows) >= limit else None  # None: all visible
        if (
            fence is not None
            and taken.xmin >= fence.xid
            and (complete_to is None or complete_to >= fence.max_id)
        ):
            self.floor = max(self.floor, fence.max_id)
            self._fence = fence = None
        if fence is None and taken.rows:
            self._fence = _Fence(taken.max_id, taken.xid)

    def reset(self) -> None:
        """A row was found below the floor: scan from the lowest id again."""
        self.floor = 0
        self._fence = None
