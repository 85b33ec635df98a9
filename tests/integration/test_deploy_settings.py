"""Every running actor carries the fingerprint of the settings of the deploy that created it
(cluster/job_env.py), so a later deploy can name the actors that run with other settings: the
job's runtime_env reaches each detached actor, and Ray's restarts keep it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from cluster import job_env, priority
from cluster.deploy import actor_names, ensure_actors
from core import registry
from core.settings import Settings


def test_every_actor_runs_with_the_settings_of_one_deploy(
    ray_cluster: Any, settings: Settings
) -> None:
    names = actor_names(settings)
    handles = {n: ray_cluster.get_actor(n, namespace=settings.ray_namespace) for n in names}
    given = dict(
        zip(
            handles,
            ray_cluster.get([h.deployed_with.remote() for h in handles.values()], timeout=60),
            strict=True,
        )
    )
    # what a deploy from this environment computes (make test starts the stack and runs the
    # suite with one environment; a stack started with other settings fails here, by design)
    niceness = priority.stage_niceness(os.environ)
    current = job_env.fingerprint(job_env.effective(settings, job_env.env_vars(), niceness))
    assert job_env.stale(given, current) == [], (current, given)
    assert job_env.stale(given, "0" * 16) == sorted(names)


def test_a_replica_of_another_count_creates_no_shard_before_it_refuses(
    ray_cluster: Any, settings: Settings
) -> None:
    """A gateway replica started with a shard count the running shards do not have (a pod of
    a new count during a rollout) created the shards its count has, then refused: the extra
    shard ran on, a second owner of some keys."""
    more = settings.model_copy(update={"inventory_shards": settings.inventory_shards + 1})
    extra = registry.inventory_shard(settings.inventory_shards)
    with pytest.raises(RuntimeError, match="shards running with another count"):
        asyncio.run(ensure_actors(more, say_every_s=5.0))
    with pytest.raises(ValueError):  # never created
        ray_cluster.get_actor(extra, namespace=settings.ray_namespace)
