"""Shard counts (ADR-014): key → shard routing is `crc32(key) % N`, so every shard and every
gateway replica must run with the same INVENTORY_SHARDS and PAYMENT_SHARDS. These tell the
shards that run with another count than a replica's or a deploy's settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core import registry
from core.settings import Settings

# the names of every shard actor start so ("inventory-shard-", "payment-shard-"), any index
SHARD_PREFIXES = (registry.inventory_shard(0)[:-1], registry.payment_shard(0)[:-1])


def found_shards(settings: Settings) -> dict[str, Any]:
    """The shard actors running in the platform's namespace (any index), by name: handles
    looked up, nothing created."""
    import ray

    out: dict[str, Any] = {}
    ns = settings.ray_namespace
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = str(actor["name"])
        if actor.get("namespace") == ns and name.startswith(SHARD_PREFIXES):
            try:
                out[name] = ray.get_actor(name, namespace=ns)
            except ValueError:
                continue  # gone meanwhile
    return out


def refuse_other_counts(settings: Settings, healths: dict[str, dict[str, Any]]) -> None:
    """Raise when a shard found (not created) runs with another count than `settings`'s."""
    wrong = other_counts(settings, healths)
    if wrong:
        # a pod created after a changed INVENTORY_SHARDS/PAYMENT_SHARDS beside shards of the
        # old count: two owners of some keys, none of others. `orders deploy` restarts them all
        raise RuntimeError(
            f"shards running with another count than this replica's (INVENTORY_SHARDS="
            f"{settings.inventory_shards}, PAYMENT_SHARDS={settings.payment_shards}): "
            f"{wrong}; change the counts with `orders deploy` (it restarts every shard), "
            "never pod by pod"
        )


def other_counts(settings: Settings, healths: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Shards (name → the count they run with) whose count is not `settings`'s."""
    want = _shard_counts(settings)
    return {
        name: int(h["of"])
        for name, h in healths.items()
        if name in want and "of" in h and h["of"] != want[name]
    }


def beyond_counts(settings: Settings, running: Iterable[str]) -> list[str]:
    """Shards running with an index the counts of `settings` do not have."""
    want = set(_shard_counts(settings))
    return sorted(n for n in running if n.startswith(SHARD_PREFIXES) and n not in want)


def _shard_counts(settings: Settings) -> dict[str, int]:
    """Every shard `settings` asks for → the count it must run with."""
    return {
        registry.inventory_shard(i): settings.inventory_shards
        for i in range(settings.inventory_shards)
    } | {registry.payment_shard(i): settings.payment_shards for i in range(settings.payment_shards)}
