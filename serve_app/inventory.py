"""Stock of one SKU: read from Postgres, written through the SKU's owner (its shard actor)."""

from __future__ import annotations

import asyncio

from ray.exceptions import RayActorError, RayTaskError

from adapters import orders_repo
from adapters.orders_repo import Pool
from adapters.pg import Row
from core import registry
from domain.errors import NotFound, OrderError, Unavailable
from serve_app.actors import ActorDirectory
from serve_app.models import Stock
from serve_app.views import stock_view

_WRITE_S = 15.0


class InventoryService:
    def __init__(self, pool: Pool, actors: ActorDirectory, shards: int) -> None:
        self._pool = pool
        self._actors = actors
        self._shards = shards

    async def get(self, sku: str) -> Stock:
        row = await orders_repo.stock_row(self._pool, sku)
        if row is None:
            raise NotFound(f"sku {sku} not found in the catalog")
        return stock_view(row)

    async def set_on_hand(self, sku: str, on_hand: int) -> Stock:
        """Route the write to the SKU's owner, the inventory shard actor."""
        name = registry.inventory_shard(registry.shard_of(sku, self._shards))
        shard = await self._actors.get(name)
        # never retried by Ray (an actor method's default): a write retried after the shard's
        # restart would land after a later write of the same SKU and undo it (one sent while
        # the shard restarts still waits for it: the 503 below says so)
        ref = shard.set_stock.options(max_task_retries=0).remote(sku, on_hand)
        try:
            # bounded: a shard restarting while Postgres is down waits for it without limit
            row: Row = await asyncio.wait_for(ref, _WRITE_S)
        except RayTaskError as exc:  # re-raise the shard's typed error for the HTTP mapping
            if isinstance(exc.cause, OrderError):
                raise exc.cause from None
            raise
        except RayActorError:  # died for good (killed, replaced): look it up again next time
            self._actors.forget(name)
            raise Unavailable(f"inventory shard {name} is restarting; retry") from None
        except TimeoutError:
            raise Unavailable(
                f"inventory shard {name} did not answer within {_WRITE_S:.0f} s; retry "
                "(the write may still apply: read the stock before writing again)"
            ) from None
        return stock_view(row)
