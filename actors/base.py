"""What every platform actor shares: the Ray options, where its tasks wait, and a shard's single
ownership."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from psycopg import AsyncConnection

from adapters.ownership import claim_ownership, watch_ownership
from adapters.pg import Row, open_pool
from adapters.uow import UnitOfWork
from consumers.loop import ConsumerLoop
from core import heap
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


class Inspectable:
    """The base of every platform actor: besides its work it says where each of its asyncio
    tasks waits (for a stage that stalls: the await its loop is in; the test suite prints it
    when a test against the stack fails) and how long its garbage collector paused it. Each
    actor ends its `__init__` with `settled(settings)`."""

    async def task_stacks(self) -> list[str]:
        return task_stacks()

    async def deployed_with(self) -> str | None:
        """The fingerprint of the settings of the deploy that created this actor
        (cluster/job_env.py): it keeps them until it is stopped, however often Ray restarts it."""
        return os.environ.get("ORDERS_DEPLOYED_WITH")

    async def heap(self) -> dict[str, Any] | None:
        """The garbage collector's pauses since the actor started (core/heap.py)."""
        return heap.report()

    async def quiesce(self) -> bool:
        """The first step of a planned stop (`orders deploy --restart` kills the actor after
        `leave`): its consumer group member (`self._consumer`), if it has one, ends its cycle
        and commits. False: it has none (the relay). A member that drained no longer consumes:
        should the kill not come (the deploy interrupted), the process ends itself after
        `_KILL_WAIT_S` and Ray restarts it with a new member."""
        member = _member(self)
        if member is None:
            return False
        asyncio.get_running_loop().call_later(_KILL_WAIT_S, _not_killed)  # even if it fails
        await member.drain()
        return True

    async def leave(self) -> bool:
        """The second step, once every member has drained: the member leaves its group, so its
        partitions move to the new member at once."""
        member = _member(self)
        if member is None:
            return False
        await member.leave()
        return True


# How long a drained actor waits for its kill before it ends itself (a deploy takes ~40 s).
_KILL_WAIT_S = 120.0


def _member(actor: object) -> ConsumerLoop | None:
    member = getattr(actor, "_consumer", None)
    return member if isinstance(member, ConsumerLoop) else None


def _not_killed() -> None:
    log.error("drained for a planned stop %.0f s ago and not killed: restarting", _KILL_WAIT_S)
    logging.shutdown()
    os._exit(1)


def task_stacks() -> list[str]:
    """Each asyncio task of the running loop as `name: outer → … → innermost await`, by
    following the awaits of its coroutine (a task's own stack shows one frame when suspended)."""
    lines = []
    for task in asyncio.all_tasks():
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while awaited is not None and len(chain) < _MAX_FRAMES:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is None:
                chain.append(type(awaited).__name__)  # a future, a generator-based awaitable
                break
            chain.append(f"{frame.f_code.co_qualname}:{frame.f_lineno}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        lines.append(f"{task.get_name()}: {' → '.join(chain)}")
    return sorted(lines)


_MAX_FRAMES = 24


def settled(settings: Settings) -> None:
    """The last step of an actor's start: its start-up objects frozen (core/heap.py)."""
    heap.settle(settings.gc_gen0_threshold)


def platform_actor(max_concurrency: int) -> Any:
    """The decorator of every platform actor: restarts forever after a crash (state reloads
    from Postgres in `__init__`), retries calls that were in flight when it died (handlers are
    idempotent), asks for a real CPU share (`ACTOR_NUM_CPUS`, so the scheduler and autoscaler
    see it and a worker host can take it) and is spread over the cluster's nodes."""
    import ray

    remote: Any = ray.remote  # its stubs omit actor-only options such as max_concurrency
    return remote(
        num_cpus=get_settings().actor_num_cpus,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=max_concurrency,
        scheduling_strategy="SPREAD",
    )


async def open_uow(settings: Settings, size: int, name: str) -> UnitOfWork:
    """A unit of work over a pool of `size` connections named `name`. With libpq's own bounds
    (`CLIENT_TIMEOUTS`): a Postgres host gone without closing its connections (a node lost, a
    network cut) held every stage's statement for the OS's ~15 minutes of retransmissions."""
    pool = await open_pool(settings.database_url, size, name, wait_for_postgres=True)
    return UnitOfWork(pool, settings.redis_url)


async def owned_shard(key: str, settings: Settings) -> tuple[UnitOfWork, asyncio.Task[None]]:
    """Claim the shard's ownership before loading its state: never a second owner of the same
    SKUs or ledgers, not even from a second Ray cluster on the same database. The lock is held
    while this process lives and watched (a Postgres restart drops it: the process then exits
    and its restart claims it again)."""
    owner: AsyncConnection[Row] = await claim_ownership(settings.database_url, key)
    watch = asyncio.create_task(watch_ownership(owner, key))
    return await open_uow(settings, 4, key), watch
