"""A scratch schema in the stack's database, migrated by Alembic in a subprocess: the migration
and retention tests work on their own tables (and pg_partman configuration) without a second
database, a superuser or touching the platform's tables. Dropped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def owner_url() -> str:
    """The role that migrates (and owns the tables): MIGRATION_DATABASE_URL when the stack has
    one, else DATABASE_URL."""
    from core.settings import get_settings

    return os.environ.get("MIGRATION_DATABASE_URL") or get_settings().database_url


def in_schema(url: str, schema: str) -> str:
    """`url` with `schema` first on the search path (libpq `options`)."""
    parts = urlsplit(url)
    query = f"options={quote(f'-csearch_path={schema}')}"
    return parts._replace(query=f"{parts.query}&{query}" if parts.query else query).geturl()


def alembic(url: str, *args: str) -> str:
    """Run the project's Alembic (`migrations/`) against `url`; returns its output."""
    return migrating(url, [sys.executable, "-m", "alembic", *args])


def migrating(url: str, argv: list[str], cwd: Path = ROOT) -> str:
    """Run a migrating command (`argv`, from `cwd`) against `url`; returns its output. A run
    that Postgres ended as a deadlock runs again, at most twice: the running stack's partition
    maintenance (the relay's, pg_partman's shared `part_config`) can meet a scratch schema's
    migration (seen once in CI, 2026-12-07); the failed run's transaction rolled back whole."""
    env = {**os.environ, "DATABASE_URL": url, "MIGRATION_DATABASE_URL": url}
    for _ in range(3):
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if proc.returncode == 0 or "DeadlockDetected" not in proc.stderr:
            break
    assert proc.returncode == 0, f"{' '.join(argv[1:])} failed:\n{proc.stderr}"
    return proc.stdout + proc.stderr


@contextmanager
def scratch_schema(prefix: str) -> Iterator[str]:
    """A new empty schema; yields the URL that works in it. Dropped with its pg_partman
    configuration and template tables at the end."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = owner_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield in_schema(url, schema)
    finally:
        _drop(url, schema)


@contextmanager
def round_trip(
    prefix: str, previous: str, fill: Callable[[str], object], snapshot: Callable[[str], T]
) -> Iterator[tuple[str, T]]:
    """A scratch schema at revision `previous`, filled by `fill`, upgraded to head and
    downgraded to `previous` again; yields its URL and its `snapshot` taken before the upgrade
    (for the test to compare with what the downgrade left)."""
    with scratch_schema(prefix) as url:
        alembic(url, "upgrade", previous)
        fill(url)
        before = snapshot(url)
        alembic(url, "upgrade", "head")
        alembic(url, "downgrade", previous)
        yield url, before


def _drop(url: str, schema: str) -> None:
    """Drop `schema` and its pg_partman configuration; again after a deadlock, at most twice
    (the stack's partition maintenance walks every table in `part_config`, as in `alembic`)."""
    for attempt in range(3):
        try:
            return _drop_once(url, schema)
        except psycopg.errors.DeadlockDetected:
            if attempt == 2:
                raise


def _drop_once(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if not _has_partman(conn):
            return
        conn.execute("DELETE FROM partman.part_config WHERE parent_table LIKE %s", (f"{schema}.%",))
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'partman' AND tablename LIKE %s",
            (f"template_{schema}_%",),
        ).fetchall():
            conn.execute(f'DROP TABLE partman."{name}"')


def _has_partman(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('partman.part_config') IS NOT NULL").fetchone()
    return bool(row and row[0])


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


def uuid7_at(at: datetime) -> uuid.UUID:
    """A UUIDv7 whose time is `at` (domain/ids.py's layout, random bits from os.urandom)."""
    ms = int(at.timestamp() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 68) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)


def time_of(u: uuid.UUID) -> datetime:
    """The millisecond time inside a UUIDv7."""
    return datetime.fromtimestamp((u.int >> 80) / 1000, UTC)
