"""`orders migrate --check` against the stack's Postgres: exit 3 on a schema behind this code's
head (an older revision, or none), 0 once migrated, 4 on a revision the code does not know,
each a line naming the database's revision and the head; the database is left as it was. Runs
in scratch schemas of the stack's database (tests/integration/scratch.py), never changing the
platform's own; the stack's runtime role reads the live schema's revision (what the Ray head's
init container does on Kubernetes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from adapters.revisions import MIGRATIONS
from tests.integration.scratch import alembic, connect, migrating, scratch_schema

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ScriptDirectory(str(MIGRATIONS))
HEAD = SCRIPTS.get_current_head() or ""
PREVIOUS = str(SCRIPTS.get_revision(HEAD).down_revision)
# what the check must leave as it was: every relation of the scratch schema and its revision
_RELATIONS = (
    "SELECT relname, relkind FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
    "ORDER BY 1"
)


def _check(url: str) -> tuple[int, str]:
    """`orders migrate --check` with DATABASE_URL=`url`: its exit code and its last line."""
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate", "--check"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, (result.stderr.splitlines() or [""])[-1]


def _state(url: str) -> tuple[list[Any], list[Any]]:
    with connect(url) as conn:
        relations = conn.execute(_RELATIONS).fetchall()
        has_version = conn.execute("SELECT to_regclass('alembic_version') AS t").fetchone()
        versions = (
            conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()
            if has_version and has_version["t"]
            else []
        )
    return relations, versions


def test_a_schema_behind_is_exit_3_naming_both_revisions_until_migrated() -> None:
    with scratch_schema("mcheck") as url:
        alembic(url, "upgrade", PREVIOUS)
        before = _state(url)
        code, line = _check(url)
        assert code == 3, line
        assert line.startswith(f"schema behind: database at {PREVIOUS}, this code's head {HEAD}")
        assert "orders migrate" in line
        assert _state(url) == before
        alembic(url, "upgrade", "head")
        code, line = _check(url)
        assert (code, line) == (0, f"schema at head: database at {HEAD}, this code's head {HEAD}")


def test_a_schema_never_migrated_is_behind_and_the_check_creates_nothing() -> None:
    with scratch_schema("mcheck") as url:
        code, line = _check(url)
        assert code == 3, line
        assert f"database at no revision (never migrated), this code's head {HEAD}" in line
        assert _state(url) == ([], [])


def test_a_revision_this_code_does_not_know_is_exit_4() -> None:
    with scratch_schema("mcheck") as url:
        with connect(url) as conn:  # what a newer image's migration leaves
            conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES ('ffffffff')")
        before = _state(url)
        code, line = _check(url)
        assert code == 4, line
        assert f"database at ffffffff, this code's head {HEAD}" in line
        assert _state(url) == before


def test_the_runtime_role_reads_the_live_schemas_revision() -> None:
    """As the Ray head's init container runs it: DATABASE_URL, the DML-only role, which must be
    able to read `alembic_version` (the stack's own database, read only)."""
    from core.settings import get_settings

    code, line = _check(get_settings().database_url)
    assert code in (0, 3, 4), line  # a verdict, whatever the live revision: not "cannot read"
    assert line.startswith("schema ") and f"this code's head {HEAD}" in line, line


def test_orders_migrate_runs_from_any_directory(tmp_path: Path) -> None:
    """`orders migrate` read `alembic.ini`, and Alembic its scripts, relative to the working
    directory: run from anywhere but the checkout (the README has the `orders` command run
    after `source .venv/bin/activate`) it failed without migrating."""
    with scratch_schema("mcwd") as url:
        migrating(url, [str(Path(sys.executable).with_name("orders")), "migrate"], tmp_path)
        code, line = _check(url)
        assert code == 0, line
