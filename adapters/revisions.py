"""The schema's revision: the one a database is at (Alembic's `alembic_version`) against the head
of this code's migrations (`migrations/versions`), for `orders migrate --check`, which a new
Ray head waits on before it starts (k8s/services/rayservice.yaml). Reads only: the database is
read in a read-only transaction and the migrations are never run."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import psycopg
from alembic.script import ScriptDirectory

# beside the packages both in the checkout and where the image installs them (pyproject's
# packages include `migrations*`)
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

# a schema never migrated has no version table: that is "no revision", not an error
_VERSION_TABLE = "SELECT to_regclass('alembic_version') IS NOT NULL"
_VERSIONS = "SELECT version_num FROM alembic_version ORDER BY 1"


class Verdict(Enum):
    AT_HEAD = "at head"
    BEHIND = "behind"  # an older revision of this code's, or none: `orders migrate` upgrades it
    UNKNOWN = "at a revision this code does not know"  # a newer image's migration ran


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema stands against this code's migrations."""

    database: tuple[str, ...]  # empty: never migrated
    heads: tuple[str, ...]
    verdict: Verdict


def code_heads(migrations: Path = MIGRATIONS) -> tuple[str, ...]:
    """The head revision(s) of this code's migrations: what `orders migrate` upgrades to."""
    return tuple(sorted(ScriptDirectory(str(migrations)).get_heads()))


def database_revisions(dsn: str, timeout_s: int = 10) -> tuple[str, ...]:
    """The revisions the database's `alembic_version` holds (empty when it has none), in a
    read-only transaction of at most `timeout_s` per step (connect, each statement).

    Raises:
        psycopg.Error: Postgres does not answer, refuses the login or the read
            (`OperationalError` for the first two).
    """
    with psycopg.connect(dsn, connect_timeout=timeout_s) as conn:
        conn.read_only = True
        conn.execute(f"SET LOCAL statement_timeout = {timeout_s * 1000}")
        row = conn.execute(_VERSION_TABLE).fetchone()
        if not (row and row[0]):
            return ()
        return tuple(str(r[0]) for r in conn.execute(_VERSIONS))


def compare(database: tuple[str, ...], migrations: Path = MIGRATIONS) -> SchemaState:
    """The verdict on a database at `database` for this code's migrations: at its heads,
    behind them (every revision one of this code's), or at a revision it does not know."""
    script = ScriptDirectory(str(migrations))
    heads = tuple(sorted(script.get_heads()))
    known = {s.revision for s in script.walk_revisions()}
    if tuple(sorted(database)) == heads:
        verdict = Verdict.AT_HEAD
    elif set(database) <= known:
        verdict = Verdict.BEHIND
    else:
        verdict = Verdict.UNKNOWN
    return SchemaState(tuple(sorted(database)), heads, verdict)
