"""The report a failed test against the stack gets (tests/integration/diagnose.py): it must show
each stage's health, what Postgres runs, and where each actor's tasks wait."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from tests.integration.diagnose import stack_report


def test_the_failure_report_shows_health_statements_and_where_each_actor_waits(
    settings: Settings, admin_headers: dict[str, str], ray_cluster: Any
) -> None:
    report = stack_report(settings, admin_headers, ray_cluster)
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


def test_a_report_part_that_cannot_be_read_says_why(
    settings: Settings, admin_headers: dict[str, str]
) -> None:
    report = stack_report(settings, admin_headers, None)
    assert "(no Ray driver in this test session)" in report
    assert "platform health (/ready)" in report
