"""Names of the platform's Ray actors and the shard routing rule (`crc32(key) % N`)."""

from __future__ import annotations

import zlib
from typing import Any

RELAY = "outbox-relay"
SHIPPING = "shipping"
NOTIFICATION = "notification"
# Consumer groups run by a `KafkaBridge` actor each (named `consumer-<group>`).
CONSUMERS = ("inventory", "payment", "shipping")
# The `notification` group runs inside the notification actor (docs/adr/ADR-006).
NOTIFICATION_GROUP = "notification"
# Names of actors that older deployments started and this one must stop when it rolls out.
RETIRED = ("consumer-notification",)


def shard_of(key: str, shards: int) -> int:
    """Stable shard index of `key` (never Python's `hash()`, which is salted per process)."""
    return zlib.crc32(key.encode()) % shards


def inventory_shard(index: int) -> str:
    return f"inventory-shard-{index}"


def payment_shard(index: int) -> str:
    return f"payment-shard-{index}"


def consumer(group: str) -> str:
    return f"consumer-{group}"


def get_actor(name: str, namespace: str) -> Any:
    """Look up a named actor; raises ValueError when it does not exist."""
    import ray

    return ray.get_actor(name, namespace=namespace)


def platform_actor(max_concurrency: int) -> Any:
    """The decorator of every stateful platform actor: a process that costs no CPU slot
    (I/O bound), restarts forever after a crash (state reloads from Postgres in `__init__`),
    and retries calls that were in flight when it died (handlers are idempotent)."""
    import ray

    remote: Any = ray.remote  # its stubs omit actor-only options such as max_concurrency
    return remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=max_concurrency)
