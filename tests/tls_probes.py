"""Questions the tests put to the local stack's Postgres and Redis over TLS (cluster/tls.sh),
shared by the deploy and the multi-node tests: each answers None when the server refuses the
client (no TLS, another CA, a wrong name)."""

from __future__ import annotations

import psycopg
import redis


def pg_over_tls(dsn: str) -> bool | None:
    """Whether a session of `dsn` runs over TLS; None when the server refuses it."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            found = row.fetchone()
            return bool(found and found[0])
    except psycopg.OperationalError:
        return None


def redis_user(url: str, **options: str) -> str | None:
    """The user Redis at `url` takes the client for; None when it refuses it."""
    try:
        with redis.Redis.from_url(url, socket_timeout=10, **options) as client:
            return str(client.acl_whoami())
    except redis.RedisError:
        return None
