"""The named actors a deployment runs, and those a rollout stops (cluster.deploy.actor_names)."""

from __future__ import annotations

from cluster.deploy import actor_names
from core.settings import Settings


def test_a_deployment_runs_the_relay_its_shards_and_the_two_owners_only() -> None:
    names = actor_names(Settings(inventory_shards=2, payment_shards=3))
    assert names == [
        "outbox-relay",
        "inventory-shard-0",
        "inventory-shard-1",
        "payment-shard-0",
        "payment-shard-1",
        "payment-shard-2",
        "shipping",
        "notification",
    ]  # no bridge: every consumer group runs inside its owners (ADR-006)


def test_a_rollout_stops_every_bridge_an_older_version_may_have_left() -> None:
    every = set(actor_names(Settings(), every=True))
    for group in ("inventory", "payment", "shipping", "notification"):
        assert {f"consumer-{group}", f"consumer-{group}-1", f"consumer-{group}-63"} <= every
    assert {"inventory-shard-63", "payment-shard-63", "shipping", "notification"} <= every


def test_each_group_runs_in_the_actors_that_own_its_effects() -> None:
    from core import registry

    assert registry.members(2, 3) == {
        "inventory": ["inventory-shard-0", "inventory-shard-1"],
        "payment": ["payment-shard-0", "payment-shard-1", "payment-shard-2"],
        "shipping": ["shipping"],
        "notification": ["notification"],
    }
