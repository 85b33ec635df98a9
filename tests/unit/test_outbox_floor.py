"""The relay's scan floor (actors/outbox_floor.py): it rises to a take's highest id only once
every writer that take's snapshot listed as running has ended and a later take covered the
range; never past a row that may still become visible."""

from __future__ import annotations

from actors.outbox_floor import ScanFloor
from adapters.outbox import Taken

LIMIT = 3


def _taken(ids: list[int], xmin: int, xid: int, floor: int = 0) -> Taken:
    rows = [("order.created", f"k{i}", b"{}") for i in ids]
    return Taken(rows, max(ids) if ids else floor, xmin, xid)


def test_the_floor_waits_for_the_writers_the_snapshot_listed_as_running() -> None:
    f = ScanFloor()
    f.committed(_taken([1, 3], xmin=100, xid=105), LIMIT)  # id 2's writer is below 105
    assert f.floor == 0
    f.committed(_taken([4], xmin=104, xid=110), LIMIT)  # 104 still running
    assert f.floor == 0
    f.committed(_taken([2, 5], xmin=105, xid=112), LIMIT)  # all below 105 ended; took id 2
    assert f.floor == 3  # the first fence; 5 waits for writers below 112
    f.committed(_taken([], xmin=112, xid=112, floor=3), LIMIT)
    assert f.floor == 5


def test_a_take_cut_short_by_its_limit_does_not_raise_the_floor_past_what_it_reached() -> None:
    f = ScanFloor()
    f.committed(_taken([10, 11, 12], xmin=1, xid=2), LIMIT)  # full: more may be above 12
    # a full take that stops below the fence's id has not covered the range up to it
    f.committed(_taken([7, 8, 9], xmin=5, xid=6), LIMIT)
    assert f.floor == 0
    f.committed(_taken([13, 14, 15], xmin=6, xid=7), LIMIT)  # full, reached past 12
    assert f.floor == 12


def test_nothing_taken_never_raises_the_floor_and_reset_starts_over() -> None:
    f = ScanFloor()
    for _ in range(3):
        f.committed(_taken([], xmin=50, xid=50), LIMIT)
    assert f.floor == 0
    f.committed(_taken([1], xmin=50, xid=51), LIMIT)
    f.committed(_taken([], xmin=51, xid=51, floor=0), LIMIT)
    assert f.floor == 1
    f.reset()
    assert f.floor == 0
    f.committed(_taken([], xmin=60, xid=60), LIMIT)
    assert f.floor == 0  # the fence went with the reset
