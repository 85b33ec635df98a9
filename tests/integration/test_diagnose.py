"""The report a failed test against the stack gets, which `orders stacks` prints too
(cli/diagnose.py): it must show each stage's health, what Postgres runs, where each actor's
tasks wait and its garbage collector's pauses."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from adapters.kafka import describe_groups
from cli.diagnose import stack_report
from cluster.deploy import actor_names
from core import registry
from core.settings import Settings
from tests.integration.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_the_failure_report_shows_health_statements_and_where_each_actor_waits(
    settings: Settings, ray_cluster: Any
) -> None:
    groups = registry.members(settings.inventory_shards, settings.payment_shards)

    def settled() -> bool:  # an earlier test may have killed a member: its group rebalances
        lines = asyncio.run(describe_groups(settings.kafka_bootstrap, list(groups)))
        return all(": Stable, " in line for line in lines)

    wait_until(settled, timeout=60, what="every consumer group to settle", interval=0.5)
    report = stack_report(settings, ray_cluster)
    assert "not readable" not in report, report
    for group in ("inventory", "payment", "shipping", "notification"):
        assert f'"consumer:{group}"' in report
    assert "locks not granted: " in report
    shard = report.split("inventory-shard-0:\n", 1)[1].split("\n", 1)[0]
    assert shard.strip(), report
    # the shard's consumer loop, down to the await it is in
    loop = [line for line in report.splitlines() if "ConsumerLoop._run:" in line]
    assert len(loop) >= 4, report  # one per group member: inventory, payment, shipping, notify
    assert all(" → " in line for line in loop)
    assert "OutboxRelay._run:" in report
    # every actor froze its start-up objects and counts its collections since (core/heap.py)
    gc_lines = [line.strip() for line in report.splitlines() if line.strip().startswith("gc: ")]
    assert len(gc_lines) == len(actor_names(settings)), report
    for line in gc_lines:
        frozen = int(line.split("frozen ", 1)[1].split(",", 1)[0])
        assert frozen > 10_000, line
        assert f"thresholds [{settings.gc_gen0_threshold}, " in line, line
    # each group as the broker sees it: settled, one member per actor that runs one
    seen = report.split("== kafka: the consumer groups as the broker sees them\n", 1)[1]
    for group, actors in groups.items():
        assert f"{group}: Stable, {len(actors)} member(s): consumer-{group}-" in seen, seen
    # the broker's own lines on joins and rebalances (the local stack's broker logs them)
    coordinator = report.split("== kafka: the group coordinator's last lines", 1)[1]
    assert "(org.apache.kafka.coordinator.group." in coordinator, coordinator


def test_a_report_part_that_cannot_be_read_says_why(settings: Settings) -> None:
    report = stack_report(settings, None)
    assert "(no Ray driver)" in report
    assert "platform health (/ready)" in report


def test_make_stacks_prints_the_report_with_the_stacks_own_environment() -> None:
    """`make stacks` gives the command Ray's address and token (cluster/common.sh): none of
    this process's RAY_ variables are passed on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run(
        ["make", "-s", "stacks"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert "== actors: where their tasks wait" in done.stdout
    assert "ConsumerLoop._run:" in done.stdout, done.stdout
    assert "not readable" not in done.stdout, done.stdout
