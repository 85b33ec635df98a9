"""A gateway replica that brings the actors up (KubeRay) refuses shards of another count."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import ray
import ray.util

from cluster import deploy
from cluster.shard_counts import beyond_counts, other_counts
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


class _Shard:
    def __init__(self, health: dict[str, Any]) -> None:
        self.health = SimpleNamespace(remote=lambda: health)


def _named(monkeypatch: pytest.MonkeyPatch, settings: Settings, names: list[str]) -> None:
    """Ray's named actors: `names` in the platform's namespace, one of the same name elsewhere."""
    listed = [{"name": n, "namespace": settings.ray_namespace} for n in names]
    listed.append({"name": "inventory-shard-9", "namespace": "another"})
    monkeypatch.setattr(ray.util, "list_named_actors", lambda all_namespaces=False: listed)


@pytest.mark.parametrize(
    ("count", "running", "changed"),
    [
        # an interrupted restart stopped shard 0 and left shard 1 of the old count (2 → 3)
        (3, {"inventory-shard-1": 2, "inventory-shard-2": 3}, True),
        # 2 → 1: shard 0 restarted with the new count, the old shard 1 left over
        (1, {"inventory-shard-0": 1, "inventory-shard-1": 2}, True),
        (3, {"inventory-shard-0": 3, "inventory-shard-1": 3, "inventory-shard-2": 3}, False),
        (3, {}, False),
    ],
)
def test_a_deploy_asks_every_running_shard_for_its_count(
    monkeypatch: pytest.MonkeyPatch, count: int, running: dict[str, int], changed: bool
) -> None:
    """`orders deploy` asked only shard 0; with shard 0 gone it saw no change and adopted
    the old count's shards beside new ones (two owners of some SKUs, none of others)."""
    settings = Settings(inventory_shards=count, payment_shards=1)
    shards = {name: _Shard({"of": of}) for name, of in running.items()}
    shards["payment-shard-0"] = _Shard({"of": 1})
    _named(monkeypatch, settings, [*shards, "shipping"])
    monkeypatch.setattr(ray, "get_actor", lambda name, namespace: shards[name])
    monkeypatch.setattr(ray, "get", lambda value, timeout: value)
    assert deploy._counts_changed(settings) is changed
    assert beyond_counts(Settings(inventory_shards=1), ["inventory-shard-1", "shipping"]) == [
        "inventory-shard-1"
    ]


def test_a_shard_that_does_not_answer_counts_as_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard stuck restarting raised `GetTimeoutError` out of the deploy before anything was
    stopped: the deploy meant to recover it could not. Now it counts as changed (restart all)."""
    from ray.exceptions import GetTimeoutError

    settings = Settings(inventory_shards=1, payment_shards=1)
    shards = {"inventory-shard-0": _Shard({"of": 1}), "payment-shard-0": _Shard({"of": 1})}

    def get(value: Any, timeout: float) -> Any:
        if value is shards["inventory-shard-0"].health.remote():
            raise GetTimeoutError("no answer")
        return value

    _named(monkeypatch, settings, list(shards))
    monkeypatch.setattr(ray, "get_actor", lambda name, namespace: shards[name])
    monkeypatch.setattr(ray, "get", get)
    assert deploy._counts_changed(settings) is True


def test_waiting_for_stopped_actors_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names still taken after the wait: the deploy stops instead of adopting dying actors."""
    monkeypatch.setattr(ray, "get_actor", lambda name, namespace: object())
    with pytest.raises(RuntimeError, match="still hold their names"):
        deploy._wait_gone(Settings(inventory_shards=1, payment_shards=1), timeout_s=0.2)
