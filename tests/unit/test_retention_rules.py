"""The retention windows agree with Kafka's or nothing starts; topics get the configs that bound
a message's life; the ops view serialises as the API does; partitions stay out of schema diffs
(docs/adr/ADR-012-retention.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from adapters.kafka import retention_configs
from adapters.retention import TABLES, TableRetention
from adapters.schema import include_name, is_partition
from core.settings import Settings


def test_dedupe_shorter_than_kafka_retention_refuses_to_start_naming_both_settings() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(kafka_retention_hours=48, dedupe_retention_hours=49, order_history_days=30)
    text = str(err.value)
    assert "DEDUPE_RETENTION_HOURS=49" in text and "KAFKA_RETENTION_HOURS=48" in text
    assert ">= 50" in text


def test_history_shorter_than_the_dedupe_window_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="ORDER_HISTORY_DAYS=1 .*DEDUPE_RETENTION_HOURS=48"):
        Settings(kafka_retention_hours=24, dedupe_retention_hours=48, order_history_days=1)


def test_windows_that_agree_are_accepted_and_give_each_table_its_window() -> None:
    s = Settings(kafka_retention_hours=24, dedupe_retention_hours=26, order_history_days=2)
    windows = {t.table: t.window(s) for t in TABLES}
    assert windows == {
        "processed_events": timedelta(hours=26),
        "notifications": timedelta(days=2),
        "order_events": timedelta(days=2),
    }


def test_topics_keep_messages_the_retention_in_hourly_segments() -> None:
    assert retention_configs(24) == {"retention.ms": "86400000", "segment.ms": "3600000"}


def test_the_ops_view_is_camel_case_with_iso_times_and_hours() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    view = TableRetention(
        "order_events", 10, 5, 3, "order_events_p2026_01_02", at, timedelta(days=30), at, 0
    ).to_json()
    assert view["oldestFrom"] == "2026-01-02T00:00:00+00:00"
    assert view["retention"] == 720.0 and view["nextDropAt"] == view["oldestFrom"]
    assert set(view) == {
        "table",
        "totalBytes",
        "rowsEstimate",
        "partitions",
        "oldestPartition",
        "oldestFrom",
        "retention",
        "nextDropAt",
        "defaultRows",
    }


@pytest.mark.parametrize(
    ("name", "partition"),
    [
        ("processed_events_p2026_12_03", True),
        ("notifications_default", True),
        ("order_events_p20261203", True),
        ("order_events", False),
        ("orders", False),
        ("payments", False),
    ],
)
def test_partitions_are_left_out_of_schema_comparisons(name: str, partition: bool) -> None:
    assert is_partition(name) is partition
    assert include_name(name, "table", {}) is not partition
    assert include_name(name, "index", {}) is True
