"""Names of the platform's Ray actors and the shard routing rule (`crc32(key) % N`)."""

from __future__ import annotations

import zlib
from typing import Any

RELAY = "outbox-relay"
SHIPPING = "shipping"
NOTIFICATION = "notification"
CONSUMERS = ("inventory", "payment", "shipping", "notification")


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
