"""What Postgres is doing right now, for a report on a stack that seems stuck (`orders stacks`,
the failure report of the integration tests)."""

from __future__ import annotations

from typing import Any

import psycopg

_ACTIVITY = (
    "SELECT pid, application_name AS app, state, "
    "coalesce(wait_event_type || ':' || wait_event, '') AS wait, "
    "round(extract(epoch FROM now() - query_start) * 1000) AS ms, "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND state <> 'idle' "
    "AND pid <> pg_backend_pid() ORDER BY query_start"
)
_WAITING_LOCKS = "SELECT count(*) FROM pg_locks WHERE NOT granted"


def busy_statements(dsn: str) -> tuple[list[tuple[Any, ...]], int]:
    """The client backends not idle `(pid, app, state, wait, ms, query)`, oldest statement
    first, and the number of locks not granted."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(_ACTIVITY).fetchall()
        waiting = conn.execute(_WAITING_LOCKS).fetchone()
    return rows, int(waiting[0]) if waiting else 0
