"""Names of the platform's Ray actors and the shard routing rule (`crc32(key) % N`)."""

from __future__ import annotations

from typing import Any

from domain.sharding import shard_of as shard_of  # re-exported: callers route by it

RELAY = "outbox-relay"
SHIPPING = "shipping"
NOTIFICATION = "notification"
# Consumer groups run by a `KafkaBridge` actor each (named `consumer-<group>`).
CONSUMERS = ("inventory", "payment")
# The `notification` and `shipping` groups run inside their owners (docs/adr/ADR-006).
NOTIFICATION_GROUP = "notification"
SHIPPING_GROUP = "shipping"


def inventory_shard(index: int) -> str:
    return f"inventory-shard-{index}"


def payment_shard(index: int) -> str:
    return f"payment-shard-{index}"


def consumer(group: str, index: int = 0) -> str:
    """The bridge actor `index` of a consumer group (the first keeps the name it always had)."""
    return f"consumer-{group}" if index == 0 else f"consumer-{group}-{index}"


def get_actor(name: str, namespace: str) -> Any:
    """Look up a named actor; raises ValueError when it does not exist."""
    import ray

    return ray.get_actor(name, namespace=namespace)


# Groups whose bridges older deployments started: they run inside their owners now (ADR-006).
RETIRED_GROUPS = (NOTIFICATION_GROUP, SHIPPING_GROUP)


def retired(per_group: int) -> list[str]:
    """The bridge actors of `RETIRED_GROUPS` an older deployment with up to `per_group` bridges
    a group may have left; a rollout stops them."""
    return [consumer(g, i) for g in RETIRED_GROUPS for i in range(per_group)]
