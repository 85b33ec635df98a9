"""What the stack looks like when a test against it fails, for the test's report: the platform's
own health (`/ready` as an admin sees it: every consumer group's lag and last error), what
Postgres is running and waiting on, and where each actor's asyncio tasks wait. A stage that
stalls shows which await it is in and which statement Postgres is running for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from core.registry import RELAY, members
from core.settings import Settings

_ACTIVITY = (
    "SELECT pid, application_name AS app, state, "
    "coalesce(wait_event_type || ':' || wait_event, '') AS wait, "
    "round(extract(epoch FROM now() - query_start) * 1000) AS ms, "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND state <> 'idle' "
    "AND pid <> pg_backend_pid() ORDER BY query_start"
)
_WAITING_LOCKS = "SELECT count(*) AS n FROM pg_locks WHERE NOT granted"


def stack_report(settings: Settings, admin: dict[str, str], ray: Any | None) -> str:
    """Every part of the report; a part that cannot be read says why instead."""
    parts = [
        ("platform health (/ready)", lambda: _ready(settings, admin)),
        ("postgres: statements not idle", lambda: _postgres(settings)),
        ("actors: where their tasks wait", lambda: _actors(settings, ray)),
    ]
    return "\n\n".join(f"== {title}\n{_safely(read)}" for title, read in parts)


def _safely(read: Callable[[], str]) -> str:
    try:
        return read()
    except Exception as exc:  # a report of a broken stack must not fail itself
        return f"(not readable: {type(exc).__name__}: {exc})"


def _ready(settings: Settings, admin: dict[str, str]) -> str:
    url = f"http://127.0.0.1:{settings.http_port}/ready"
    body = httpx.get(url, headers=admin, timeout=10).json()
    return json.dumps(body, indent=1, sort_keys=True)


def _postgres(settings: Settings) -> str:
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(_ACTIVITY).fetchall()
        waiting = conn.execute(_WAITING_LOCKS).fetchone()
    lines = [" | ".join(str(v) for v in row) for row in rows]
    lines.append(f"locks not granted: {waiting[0] if waiting else '?'}")
    return "\n".join(lines)


def _actors(settings: Settings, ray: Any | None) -> str:
    if ray is None:
        return "(no Ray driver in this test session)"
    names = [
        RELAY,
        *(
            n
            for group in members(settings.inventory_shards, settings.payment_shards).values()
            for n in group
        ),
    ]
    out = []
    for name in dict.fromkeys(names):
        try:
            actor = ray.get_actor(name, namespace=settings.ray_namespace)
            stacks = ray.get(actor.task_stacks.remote(), timeout=10)
            out.append(f"{name}:\n  " + "\n  ".join(stacks))
        except Exception as exc:
            out.append(f"{name}: (not readable: {type(exc).__name__}: {exc})")
    return "\n".join(out)
