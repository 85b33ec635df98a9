"""Names of the platform's Ray actors and the shard routing rule (`crc32(key) % N`)."""

from __future__ import annotations

import asyncio
from typing import Any

from domain.sharding import shard_of as shard_of  # re-exported: callers route by it

RELAY = "outbox-relay"
SHIPPING = "shipping"
NOTIFICATION = "notification"
# Every consumer group runs inside the actors that own its effects (docs/adr/ADR-006): one
# member in each inventory shard, one in each payment shard, one in the shipping and one in the
# notification actor.
INVENTORY_GROUP = "inventory"
PAYMENT_GROUP = "payment"
NOTIFICATION_GROUP = "notification"
SHIPPING_GROUP = "shipping"


def inventory_shard(index: int) -> str:
    return f"inventory-shard-{index}"


def payment_shard(index: int) -> str:
    return f"payment-shard-{index}"


def members(inventory_shards: int, payment_shards: int) -> dict[str, list[str]]:
    """Per consumer group, the actors that run its members (docs/adr/ADR-006): every shard of
    the group's kind, and the shipping and notification actors their one group each."""
    return {
        INVENTORY_GROUP: [inventory_shard(i) for i in range(inventory_shards)],
        PAYMENT_GROUP: [payment_shard(i) for i in range(payment_shards)],
        SHIPPING_GROUP: [SHIPPING],
        NOTIFICATION_GROUP: [NOTIFICATION],
    }


def bridge(group: str, index: int = 0) -> str:
    """The name older deployments gave bridge actor `index` of a consumer group."""
    return f"consumer-{group}" if index == 0 else f"consumer-{group}-{index}"


def get_actor(name: str, namespace: str) -> Any:
    """Look up a named actor; raises ValueError when it does not exist."""
    import ray

    return ray.get_actor(name, namespace=namespace)


async def find_actor(name: str, namespace: str, timeout_s: float) -> Any:
    """`get_actor` for an event loop: the blocking call to Ray's GCS in a thread, and bounded
    (a GCS failing over answers after up to a minute): ValueError when the actor does not
    exist, TimeoutError after `timeout_s`."""
    lookup = asyncio.to_thread(get_actor, name, namespace)
    return await asyncio.wait_for(lookup, timeout_s)


# Older deployments ran consumer groups in bridge actors of their own (`KafkaBridge`, up to
# `CONSUMERS_PER_GROUP` = 64 per group); every group runs inside its owners now (ADR-006).
RETIRED_GROUPS = (INVENTORY_GROUP, PAYMENT_GROUP, NOTIFICATION_GROUP, SHIPPING_GROUP)
RETIRED_PER_GROUP = 64


def retired() -> list[str]:
    """The bridge actors an older deployment may have left running; a rollout stops them."""
    return [bridge(g, i) for g in RETIRED_GROUPS for i in range(RETIRED_PER_GROUP)]
