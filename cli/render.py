"""How the CLI shows things (pure: data in, rich renderables or text out)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from adapters.audit import TableSize
from adapters.retention import TableRetention
from domain.model import OrderStatus, is_terminal

STATUS_STYLE = {
    "PENDING": "yellow",
    "RESERVED": "cyan",
    "PAID": "blue",
    "SHIPPED": "magenta",
    "DELIVERED": "bold green",
    "REJECTED": "bold red",
    "DECLINED": "bold red",
    "CANCELLED": "bold red",
    "REFUNDED": "bold red",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def final(status: str | None) -> bool:
    """Whether `status` is a final order status (an unknown one is not)."""
    if status is None or status not in OrderStatus.__members__:
        return False
    return is_terminal(OrderStatus(status))


def human_bytes(n: int) -> str:
    """1536 → `1.5 KiB`; powers of 1024, one decimal from KiB on."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_count(n: int) -> str:
    """1234567 → `1,234,567`."""
    return f"{n:,}"


def clock(iso: str) -> str:
    """The time of day of an ISO 8601 timestamp, to the millisecond (the text itself when it
    is not one)."""
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return iso


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the stack: `up` None means not checked (e.g. the gateway is down)."""

    name: str
    up: bool | None
    where: str
    detail: str = ""


def parts_table(parts: Iterable[Part], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    for col in ("part", "state", "where", "detail"):
        table.add_column(col, overflow="fold")
    for p in parts:
        state = {True: "[green]up[/green]", False: "[red]down[/red]", None: "[dim]?[/dim]"}[p.up]
        table.add_row(f"  {p.name}", state, p.where, p.detail)
    return table


def readiness_parts(ready: Mapping[str, Any]) -> list[Part]:
    """The gateway's `/ready` checks that the stack list does not show (actors, payments)."""
    shown = {"postgres", "redis", "kafka"}
    out = []
    for name, check in ready.get("checks", {}).items():
        if name in shown or not isinstance(check, dict):
            continue
        state = check.get("status")
        up = True if state == "up" else (False if state == "down" else None)
        extra = {k: v for k, v in check.items() if k not in ("status", "pid") and v is not None}
        detail = ", ".join(f"{k}={v}" for k, v in extra.items())
        if state not in ("up", "down"):
            detail = f"{state}; {detail}" if detail else str(state)
        out.append(Part(name, up, "", detail))
    return out


def tables_table(sizes: Sequence[TableSize], dated: Mapping[str, int] | None = None) -> Table:
    """Size and estimated rows per table; partition columns once any table is partitioned.
    Its partitions are the dated ones, as the retention table counts them (`dated`, from the
    retention report); a table that report does not cover shows every leaf partition, the
    DEFAULT one included, marked `*`."""
    parted = any(s.partitions for s in sizes)
    table = Table(title="tables", title_justify="left")
    table.add_column("table")
    table.add_column("size", justify="right")
    table.add_column("rows (est.)", justify="right")
    if parted:
        table.add_column("partitions", justify="right")
        table.add_column("oldest partition", overflow="fold")
    for s in sizes:
        row = [s.name, human_bytes(s.bytes), human_count(s.rows)]
        if parted:
            row += [_partitions(s, dated or {}), _oldest(s)]
        table.add_row(*row)
    if sizes:
        total = sum(s.bytes for s in sizes)
        table.add_section()
        table.add_row("total", human_bytes(total), "", *([""] * (2 if parted else 0)))
    if parted and any(s.partitions and s.name not in (dated or {}) for s in sizes):
        table.caption = "* every leaf partition, the DEFAULT one included"
    return table


def _partitions(s: TableSize, dated: Mapping[str, int]) -> str:
    if not s.partitions:
        return "-"
    return str(dated[s.name]) if s.name in dated else f"{s.partitions}*"


def _oldest(s: TableSize) -> str:
    """The oldest dated partition with its bound; `-` for a plain table (or none yet)."""
    if s.oldest_partition is None:
        return "-"
    return f"{s.oldest_partition} {s.oldest_bound or ''}".strip()


def lag_table(lags: Mapping[str, tuple[int, int]]) -> Table:
    """`group → (lag, partitions)`: messages not yet committed by each consumer group."""
    table = Table(title="consumer lag", title_justify="left", caption="Kafka, committed offsets")
    table.add_column("group")
    table.add_column("lag", justify="right")
    table.add_column("partitions", justify="right")
    for group, (lag, parts) in lags.items():
        table.add_row(group, Text(human_count(lag), style="yellow" if lag else ""), str(parts))
    return table


def order_view(order: Mapping[str, Any]) -> RenderableType:
    """An order as `GET /api/orders/{id}` returns it: summary, lines, timeline."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="dim")
    head.add_column()
    head.add_row("order", str(order.get("orderId", "")))
    head.add_row("status", status_text(str(order.get("status", ""))))
    if order.get("reason"):
        head.add_row("reason", str(order["reason"]))
    head.add_row("customer", str(order.get("customerId", "")))
    head.add_row("total", f"{order.get('total', '')} {order.get('currency', '')}".strip())
    head.add_row("payment", str(order.get("paymentMethod", "")))
    head.add_row("created", str(order.get("createdAt", "")))
    head.add_row("updated", str(order.get("updatedAt", "")))
    items = Table(title="items", title_justify="left")
    items.add_column("sku")
    items.add_column("qty", justify="right")
    items.add_column("unit price", justify="right")
    for line in order.get("items", []):
        items.add_row(str(line["sku"]), str(line["qty"]), str(line["unitPrice"]))
    return Group(head, items, timeline_table(order.get("timeline") or []))


def timeline_table(entries: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="timeline", title_justify="left")
    for col in ("at", "status", "event", "detail"):
        table.add_column(col, overflow="fold")
    for e in entries:
        detail = e.get("detail") or {}
        text = ", ".join(f"{k}={v}" for k, v in detail.items()) if isinstance(detail, dict) else ""
        status = status_text(str(e.get("status", "")))
        table.add_row(clock(str(e.get("at", ""))), status, str(e.get("event", "")), text)
    return table


def change_line(status: str, event: str, at: str) -> Text:
    """One line of `orders watch`: time, status, the event that moved it."""
    line = Text(f"{clock(at)}  ")
    line.append(f"{status:<10}", style=STATUS_STYLE.get(status, ""))
    line.append(f"  {event}")
    if final(status):
        line.append("  (final)", style="dim")
    return line


def retention_table(tables: Sequence[TableRetention]) -> Table:
    """Per partitioned history table: its window, oldest partition and when it is dropped."""
    table = Table(title="retention (pg_partman, ADR-012)")
    for name in ("table", "window", "partitions", "oldest partition", "next drop", "default rows"):
        table.add_column(name)
    for t in tables:
        hours = t.retention.total_seconds() / 3600
        window = f"{hours / 24:g} d" if hours >= 48 else f"{hours:g} h"
        # (Postgres wrote the bound in the server's time zone, which need not be UTC)
        drop = (
            t.next_drop_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t.next_drop_at else "-"
        )
        # rows in no dated partition: ids not UUIDv7, or maintenance lapsed (ADR-012)
        stray = Text(str(t.default_rows), style="bold red" if t.default_rows else "")
        table.add_row(t.table, window, str(t.partitions), t.oldest_partition or "-", drop, stray)
    return table


def as_json(value: object) -> str:
    """`value` as one JSON document for scripts (`--json`): a dataclass becomes an object with
    its fields' names in camelCase like the API's (a mapping keeps its keys: they may be
    data), times ISO 8601, durations seconds."""
    return json.dumps(_plain(value), indent=2, ensure_ascii=False)


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {_camel(f.name): _plain(getattr(value, f.name)) for f in fields}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)
