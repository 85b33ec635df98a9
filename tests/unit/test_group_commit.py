"""Group commit (adapters.group_commit): an item whose caller is gone before its batch is
taken is never written; closing fails every caller still waiting instead of leaving it."""

from __future__ import annotations

import asyncio

import pytest

from adapters.group_commit import Closed, GroupCommit


class _Store:
    """A flush that waits for `release` (a slow Postgres) and records what it wrote."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.release = asyncio.Event()

    async def flush(self, items: list[int]) -> list[int]:
        await self.release.wait()
        self.written += items
        return items


async def test_an_item_whose_caller_left_is_not_written() -> None:
    store = _Store()
    commit: GroupCommit[int, int] = GroupCommit(store.flush, flushers=1)
    first = asyncio.create_task(commit.submit(1))  # taken at once: its batch waits on Postgres
    await asyncio.sleep(0)
    left = asyncio.create_task(commit.submit(2))  # queued behind it
    stays = asyncio.create_task(commit.submit(3))
    await asyncio.sleep(0)
    left.cancel()  # the client disconnected, Serve cancelled the request
    store.release.set()
    assert await first == 1 and await stays == 3
    assert store.written == [1, 3]  # 2 was written minutes later, for a client that saw no 202
    await commit.close()


async def test_closing_fails_every_caller_still_waiting() -> None:
    store = _Store()  # never released: the statement hangs
    commit: GroupCommit[int, int] = GroupCommit(store.flush, flushers=1)
    callers = [asyncio.create_task(commit.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    await commit.close()
    for caller in callers:
        with pytest.raises(Closed):
            await asyncio.wait_for(caller, 1)  # they waited for ever


async def test_a_caller_after_close_is_refused_not_left_waiting() -> None:
    """A request that reached the accept path while the replica shut down queued its item
    where no flusher would take it: it waited for ever, its Idempotency-Key claim left."""
    commit: GroupCommit[int, int] = GroupCommit(_Store().flush, flushers=1)
    await commit.close()
    with pytest.raises(Closed):
        await asyncio.wait_for(commit.submit(1), 1)
