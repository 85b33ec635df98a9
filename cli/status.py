"""`orders status`: each part of the stack up or down (as `make status`), the pipeline's actors
as the gateway reports them, the tables' sizes and each consumer group's lag."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from adapters import audit, retention
from adapters.audit import GroupOffsets, TableSize, where
from adapters.retention import TableRetention
from cli import api, render
from cli.order import Token, Url
from cli.ray_access import RayAccess, unreachable
from cli.render import Part
from consumers import routes
from core.settings import Settings, get_settings

TABLES = (
    "orders",
    "order_events",
    "notifications",
    "processed_events",
    "reservations",
    "reservation_holds",
    "payments",
    "shipments",
    "outbox",
)
_TIMEOUT_S = 3.0
ADMIN_HINT = f"export the stack's JWT_SECRET or pass an admin's --token/{api.TOKEN_ENV}"
console = Console(highlight=False)


@dataclass
class Report:
    stack: list[Part] = field(default_factory=list)
    pipeline: list[Part] = field(default_factory=list)
    sizes: list[TableSize] = field(default_factory=list)
    lags: dict[str, tuple[int, int]] = field(default_factory=dict)
    retention: list[TableRetention] = field(default_factory=list)
    pipeline_known: bool = True  # False: the gateway is up but its /ready could not be read
    ready: dict[str, Any] | None = None  # the gateway's /ready as an admin reads it

    @property
    def all_up(self) -> bool:
        """No part of the stack down, nor an actor behind the gateway (its /ready): orders
        stay PENDING when the relay or a consumer group is down, the processes all running.
        A part not checked (None) or degraded does not count as down; actors that could not be
        read (a token the gateway rejects) count as not up."""
        return (
            all(p.up for p in self.stack)
            and self.pipeline_known
            and all(p.up is not False for p in self.pipeline)
        )

    def to_json(self) -> dict[str, Any]:
        """What the tables show, for `--json` (`pipeline` and `ready` null: the actors could not
        be read, the gateway down or the token not an admin's)."""
        return {
            "allUp": self.all_up,
            "stack": self.stack,
            "pipeline": self.pipeline if self.ready is not None else None,
            "ready": self.ready,
            "tables": self.sizes,
            "retention": self.retention,
            "consumerLag": [
                {"group": group, "lag": lag, "partitions": partitions}
                for group, (lag, partitions) in self.lags.items()
            ],
        }


def status(
    url: Url = None,
    token: Token = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON document on stdout instead of tables")
    ] = False,
) -> None:
    """The stack up or down, the actors, table sizes, retention and consumer lag.

    Each part of the stack (as `make status`), the actors behind the gateway (its /ready),
    each table's size and estimated rows, and each consumer group's lag from its committed
    Kafka offsets. Exits 1 when a part of the stack, or an actor behind the gateway, is down,
    or when the actors cannot be read (the gateway rejects the token)."""
    s = get_settings()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a down broker: one line below
    report = asyncio.run(gather(s, api.base_url(s, url), token))
    if as_json:
        print(render.as_json(report.to_json()))
    else:
        show(report)
    if not report.all_up:
        raise typer.Exit(1)


def show(report: Report) -> None:
    console.print(render.parts_table(report.stack, "stack"))
    if report.pipeline:
        console.print(render.parts_table(report.pipeline, "pipeline (the gateway's /ready)"))
    if report.sizes:
        dated = {t.table: t.partitions for t in report.retention}
        console.print(render.tables_table(report.sizes, dated))
    if report.retention:
        console.print(render.retention_table(report.retention))
    if report.lags:
        console.print(render.lag_table(report.lags))


async def gather(s: Settings, url: str, token: str | None) -> Report:
    """Every probe at once, each bounded in time."""
    groups = {g: routes.topics(g) for g in routes.GROUPS}
    pg, redis, kafka, ray, gateway, kept = await asyncio.gather(
        asyncio.to_thread(audit.table_sizes, s.database_url, TABLES, _TIMEOUT_S),
        asyncio.to_thread(audit.ping_redis, s.redis_url, _TIMEOUT_S),
        audit.group_offsets(s.kafka_bootstrap, groups, _TIMEOUT_S * 2),
        asyncio.to_thread(_ray),
        asyncio.to_thread(_gateway, s, url, token),
        asyncio.wait_for(retention.report_dsn(s.database_url, s), _TIMEOUT_S),
        return_exceptions=True,
    )
    report = Report()
    report.stack.append(_part("postgres", pg, where(s.database_url)))
    report.stack.append(_part("redis", redis, where(s.redis_url)))
    report.stack.append(_part("kafka", kafka, s.kafka_bootstrap))
    report.stack.append(ray if isinstance(ray, Part) else _part("ray", ray, ""))
    if isinstance(gateway, BaseException):
        report.stack.append(_part("gateway", gateway, url))
    else:
        report.stack.append(gateway[0])
        report.pipeline, report.pipeline_known, report.ready = gateway[1:]
    if isinstance(pg, list):
        report.sizes = pg
    if isinstance(kafka, list):
        report.lags = lags(kafka)
    if isinstance(kept, list):
        report.retention = kept
    return report


def _part(name: str, result: object, where_: str) -> Part:
    if isinstance(result, BaseException):
        why = str(result).strip().splitlines()[0] if str(result).strip() else ""
        return Part(name, False, where_, why or type(result).__name__)
    return Part(name, True, where_)


def lags(offsets: Iterable[GroupOffsets]) -> dict[str, tuple[int, int]]:
    """`group → (messages not committed yet, partitions)`; a partition the group never
    committed counts from its first offset."""
    out = {}
    for g in offsets:
        behind = 0
        for key, end in g.end.items():
            committed = g.committed.get(key)
            behind += max(0, end - (g.begin.get(key, 0) if committed is None else committed))
        out[g.group] = (behind, len(g.end))
    return out


def _ray() -> Part:
    """The GCS port answers, and the dashboard with its version (cli/ray_access.py: RAY_ADDRESS,
    RAY_GCS_PORT, DASHBOARD_PORT, RAY_AUTH_TOKEN, as the stack's scripts set them)."""
    access = RayAccess()
    text = f"{access.address}, dashboard {access.dashboard}"
    down = unreachable(access.address, _TIMEOUT_S)
    if down is not None:
        return Part("ray", False, text, down)
    token = access.ray_auth_token  # the dashboard asks for Ray's token (security.md)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.get(f"{access.dashboard}/api/version", headers=auth, timeout=_TIMEOUT_S)
        if resp.status_code == 401:
            return Part("ray", True, text, "dashboard answers 401: RAY_AUTH_TOKEN not set or wrong")
        version = resp.json()["ray_version"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return Part("ray", True, text, "dashboard not answering")
    return Part("ray", True, text, f"Ray {version}")


def _gateway(
    s: Settings, url: str, token: str | None
) -> tuple[Part, list[Part], bool, dict[str, Any] | None]:
    """`/health`, then `/ready` as an admin for the actors behind the gateway (and the document
    itself); False when they cannot be read: the pipeline is unknown (one part not checked
    says why)."""
    try:
        httpx.get(f"{url}/health", timeout=_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError as exc:
        return Part("gateway", False, url, str(exc) or type(exc).__name__), [], True, None
    try:
        ready: dict[str, Any] = api.readiness(url, api.token(s, token), _TIMEOUT_S)
    except (api.ApiError, httpx.HTTPError) as exc:
        shown = f"/ready: {str(exc) or type(exc).__name__}"
        rejected = isinstance(exc, api.ApiError) and exc.status in (401, 403)
        why = api.TOKEN_HINT if rejected else shown
    else:
        shown = f"ready: {ready['status']}"
        if isinstance(ready.get("checks"), dict):
            return Part("gateway", True, url, shown), render.readiness_parts(ready), True, ready
        why = f"/ready has no checks (not an admin's token): {ADMIN_HINT}"
    unknown = [Part("actors", None, "", f"unknown: {why}")]
    return Part("gateway", True, url, shown), unknown, False, None
