"""A gateway replica that brings the actors up (KubeRay) refuses shards of another count."""

from __future__ import annotations

from cluster.deploy import other_counts
from core.settings import Settings


def test_shards_of_another_count_are_named() -> None:
    """A pod recreated after INVENTORY_SHARDS changed from 2 to 3 would run inventory-shard-0
    "of 3" beside inventory-shard-1 "of 2": both own the SKUs with crc32 % 6 == 3."""
    settings = Settings(inventory_shards=3, payment_shards=2)
    healths = {
        "inventory-shard-0": {"of": 3},
        "inventory-shard-1": {"of": 2},
        "inventory-shard-2": {"of": 3},
        "payment-shard-0": {"of": 2},
        "payment-shard-1": {"of": 2},
        "shipping": {"pending": 0},
    }
    assert other_counts(settings, healths) == {"inventory-shard-1": 2}
    healths["inventory-shard-1"] = {"of": 3}
    assert other_counts(settings, healths) == {}
