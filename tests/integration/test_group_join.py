"""A consumer stuck in a group join rebuilds itself (consumers/membership.py, docs/reliability.md).

A restarted inventory shard whose first join has begun cannot finish it while the broker is
frozen (SIGSTOP): aiokafka's `start` would wait for it without end, `up` in `/ready`. It must
raise once the join has lasted 60 s (the shard's `lastError` says so), and once the broker is
back the group must settle and orders flow again. (Frozen before the join begins, the restart
fails at its bootstrap instead, and the loop retries that as any broker outage.)"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from consumers.membership import JOIN_LIMIT_S
from core import registry
from core.settings import RUN_DIR, Settings
from tests.integration.conftest import Api, wait_until


def _inventory(api: Api) -> dict[str, Any]:
    check: dict[str, Any] = api.http.get("/ready", headers=api.admin).json()["checks"]
    return dict(check["consumer:inventory"])


def _members(api: Api) -> list[dict[str, Any]]:
    group = _inventory(api)
    return list(group.get("members", [group]))


def _join_error(api: Api) -> str | None:
    errors = [str(m.get("lastError") or "") for m in _members(api)]
    limit = f"group join not completed in {JOIN_LIMIT_S:.0f}s"
    return next((e for e in errors if limit in e), None)


def _joining(api: Api, before_pid: int) -> bool:
    """The restarted shard 0 is up and in its first join (the broker waits for the killed
    member's session to expire first: several seconds)."""
    return any(
        m.get("shard", 0) == 0 and m.get("pid") != before_pid and m.get("joiningS", 0) > 0
        for m in _members(api)
    )


@pytest.mark.timeout(600)  # its waits add up to 345 s on a slow box (the default is 300)
def test_a_member_whose_join_cannot_end_rebuilds_and_the_group_recovers(
    api: Api, customer: str, settings: Settings, ray_cluster: Any
) -> None:
    pid_file = RUN_DIR / "pids" / "kafka.pid"
    if not pid_file.is_file():
        pytest.skip("the broker does not run from this checkout (no .run/pids/kafka.pid)")
    broker = int(pid_file.read_text())
    before = ray_cluster.get(ray_cluster.get_actor(registry.inventory_shard(0)).health.remote())
    ray_cluster.kill(ray_cluster.get_actor(registry.inventory_shard(0)), no_restart=False)
    wait_until(
        lambda: _joining(api, before["pid"]),
        timeout=60,
        what="the restarted shard to begin its first join",
        interval=0.2,
    )
    os.kill(broker, signal.SIGSTOP)
    try:
        error = wait_until(
            lambda: _join_error(api),
            timeout=JOIN_LIMIT_S + 45,
            what="the restarted shard to give up its join",
            interval=1.0,
        )
    finally:
        os.kill(broker, signal.SIGCONT)
    assert "start waited for it" in error or "a fetch waited for it" in error, error
    wait_until(  # every group: the frozen broker let the others' sessions lapse too
        lambda: api.http.get("/ready", headers=api.admin).json()["status"] == "up",
        timeout=120,
        what="every consumer group to settle and clear its error",
        interval=1.0,
    )
    shard = ray_cluster.get(ray_cluster.get_actor(registry.inventory_shard(0)).health.remote())
    assert shard["pid"] != before["pid"] and shard["joiningS"] == 0.0
    order = api.place_ok(customer, [("SKU-1", 1)])
    api.wait_status(customer, order, "DELIVERED", timeout=60)
