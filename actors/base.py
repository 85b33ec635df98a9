"""What every platform actor shares: the Ray options, and a shard's single ownership."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import AsyncConnection

from adapters.pg import Row, claim_ownership, open_pool, watch_ownership
from adapters.uow import UnitOfWork
from core.settings import Settings, get_settings


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
    """A unit of work over a pool of `size` connections named `name`."""
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
