"""What `orders status`, `orders get` and `orders watch` print (pure formatting)."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta, timezone

from rich.console import Console, RenderableType

from adapters.audit import GroupOffsets, TableSize, where
from adapters.retention import TableRetention
from cli import render
from cli.status import Report, lags


def _text(*items: RenderableType) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    for item in items:
        console.print(item)
    return console.export_text()


def test_sizes_and_counts_read_like_a_human_would_write_them() -> None:
    assert render.human_bytes(0) == "0 B"
    assert render.human_bytes(1023) == "1023 B"
    assert render.human_bytes(1536) == "1.5 KiB"
    assert render.human_bytes(89 * 1024**2) == "89.0 MiB"
    assert render.human_bytes(3 * 1024**5) == "3072.0 TiB"
    assert render.human_count(1234567) == "1,234,567"


def test_clock_shows_the_time_of_day_to_the_millisecond() -> None:
    assert render.clock("2026-12-03T07:23:23.781569+00:00") == "07:23:23.781"
    assert render.clock("not a time") == "not a time"


def test_final_statuses() -> None:
    assert render.final("DELIVERED") and render.final("REFUNDED") and render.final("CANCELLED")
    assert not render.final("SHIPPED") and not render.final(None) and not render.final("BOGUS")


def test_tables_show_partition_columns_only_once_a_table_is_partitioned() -> None:
    plain = [TableSize("orders", 40 * 1024**2, 54_848), TableSize("outbox", 8192, 0)]
    text = _text(render.tables_table(plain))
    assert "orders" in text and "40.0 MiB" in text and "54,848" in text
    assert "partitions" not in text
    assert "40.0 MiB" in text.split("total")[1]  # 40 MiB + 8 KiB
    parted = [
        *plain,
        TableSize("order_events", 2048, 10, 3, "order_events_p20261130", "FOR VALUES FROM (x)"),
    ]
    text = _text(render.tables_table(parted))
    assert "oldest partition" in text
    assert "order_events_p20261130 FOR VALUES FROM (x)" in text
    assert "None" not in text  # a plain table has no oldest partition: `-`
    assert [line.split("│")[5].strip() for line in text.splitlines() if "orders " in line] == ["-"]


def test_tables_count_partitions_as_the_retention_table_does() -> None:
    """The sizes count every leaf, the DEFAULT partition included; the retention report only
    the dated ones: the tables table shows the retention report's count, or marks its own."""
    sizes = [TableSize("order_events", 2048, 10, 12, "order_events_p20261130", "FOR (x)")]
    text = _text(render.tables_table(sizes, {"order_events": 11}))
    row = next(line for line in text.splitlines() if "order_events " in line)
    assert row.split("│")[4].strip() == "11" and "DEFAULT" not in text
    text = _text(render.tables_table(sizes))  # the retention report could not be read
    row = next(line for line in text.splitlines() if "order_events " in line)
    assert row.split("│")[4].strip() == "12*"
    assert "* every leaf partition, the DEFAULT one included" in text


def test_lag_counts_uncommitted_partitions_from_their_first_offset() -> None:
    got = lags(
        [
            GroupOffsets(
                "payment",
                {("a", 0): 10, ("a", 1): None, ("b", 0): 7},
                {("a", 0): 0, ("a", 1): 4, ("b", 0): 0},
                {("a", 0): 12, ("a", 1): 9, ("b", 0): 7},
            ),
            GroupOffsets("idle", {}, {}, {}),
        ]
    )
    assert got == {"payment": (2 + 5 + 0, 3), "idle": (0, 0)}
    text = _text(render.lag_table(got))
    assert "payment" in text and "7" in text


def test_where_drops_credentials() -> None:
    assert where("postgresql://orders:s3cret@db.local:5432/orders") == "db.local:5432/orders"
    assert where("redis://app:pw@127.0.0.1:6379/0") == "127.0.0.1:6379/0"
    assert where("redis://127.0.0.1") == "127.0.0.1"


def test_stack_parts_and_readiness() -> None:
    ready = {
        "status": "degraded",
        "checks": {
            "postgres": {"status": "up"},
            "payments": {"status": "up", "breaker": "closed"},
            "relay": {"pid": 1, "status": "down", "kafka": "down", "lastError": "boom"},
            "consumer:payment": {"status": "degraded", "lag": 3, "lastError": None},
        },
    }
    parts = render.readiness_parts(ready)
    assert [(p.name, p.up) for p in parts] == [
        ("payments", True),
        ("relay", False),
        ("consumer:payment", None),
    ]
    assert parts[1].detail == "kafka=down, lastError=boom"  # no pid, no nulls
    assert parts[2].detail == "degraded; lag=3"
    report = Report(stack=[render.Part("postgres", True, "h:1"), render.Part("redis", False, "")])
    assert not report.all_up
    # every process running, the relay behind the gateway down: orders stay PENDING (exit 1)
    running = [render.Part("postgres", True, "h:1")]
    assert not Report(stack=running, pipeline=parts).all_up
    assert Report(stack=running, pipeline=[parts[0], parts[2]]).all_up  # degraded is not down
    text = _text(render.parts_table(report.stack, "stack"))
    assert "postgres  up" in text and "redis     down" in text


def test_an_order_and_a_watch_line() -> None:
    order = {
        "orderId": "01a23ac9-5905-70ad-a695-176e05057728",
        "customerId": "c-1",
        "status": "REFUNDED",
        "reason": "shipping failed",
        "items": [{"sku": "SKU-1", "qty": 2, "unitPrice": 42.0}],
        "total": 84.0,
        "currency": "USD",
        "paymentMethod": "pm_card_visa",
        "createdAt": "2026-12-03T07:23:23.781569+00:00",
        "updatedAt": "2026-12-03T07:23:24.116993+00:00",
        "timeline": [
            {"status": "PENDING", "event": "OrderCreated", "at": "2026-12-03T07:23:23.781+00:00"},
            {
                "status": "PAID",
                "event": "PaymentAuthorized",
                "at": "2026-12-03T07:23:23.827+00:00",
                "detail": {"amount": "84.00"},
            },
        ],
    }
    text = _text(render.order_view(order))
    for part in ("01a23ac9-5905-70ad-a695-176e05057728", "REFUNDED", "shipping failed", "c-1"):
        assert part in text
    assert "84.0 USD" in text and "SKU-1" in text
    assert "07:23:23.827" in text and "PaymentAuthorized" in text and "amount=84.00" in text
    line = render.change_line("DELIVERED", "ShipmentDelivered", "2026-12-03T07:23:24.116+00:00")
    assert line.plain == "07:23:24.116  DELIVERED   ShipmentDelivered  (final)"
    assert (
        render.change_line("PAID", "PaymentAuthorized", "x").plain
        == "x  PAID        PaymentAuthorized"
    )


def test_the_next_drop_is_shown_in_utc_whatever_the_servers_time_zone() -> None:
    """Postgres writes a partition's bound in its own time zone: 00:00+01 is 23:00 UTC the day
    before, not "00:00 UTC"."""
    plus_one = timezone(timedelta(hours=1))
    table = TableRetention(
        "order_events", 0, 0, 3, "order_events_p20261201", None, timedelta(days=30), None, 0
    )
    table = dataclasses.replace(table, next_drop_at=datetime(2026, 12, 4, tzinfo=plus_one))
    assert "2026-12-03 23:00 UTC" in _text(render.retention_table([table]))
