"""`orders migrate --check` without a database: the verdicts on the revisions a database may
hold, a Postgres that does not answer (exit 1, one line naming this code's head, not a
traceback) and the exit codes its help documents. Against the stack's Postgres:
tests/integration/test_migrate_check.py."""

from __future__ import annotations

import socket

import pytest
from alembic.script import ScriptDirectory

from adapters.revisions import MIGRATIONS, Verdict, code_heads, compare
from tests.unit.cli_run import orders

SCRIPTS = ScriptDirectory(str(MIGRATIONS))
HEAD = SCRIPTS.get_current_head() or ""
FIRST = SCRIPTS.get_base() or ""


def test_the_code_has_one_head_and_it_is_the_last_migration() -> None:
    assert HEAD and code_heads() == (HEAD,)
    assert HEAD != FIRST


@pytest.mark.parametrize(
    ("database", "verdict"),
    [
        ((HEAD,), Verdict.AT_HEAD),
        ((FIRST,), Verdict.BEHIND),
        ((), Verdict.BEHIND),  # never migrated: `orders migrate` creates everything
        (("ffffffff",), Verdict.UNKNOWN),  # a newer image's migration
        ((HEAD, "ffffffff"), Verdict.UNKNOWN),
    ],
)
def test_the_verdict_on_the_databases_revisions(
    database: tuple[str, ...], verdict: Verdict
) -> None:
    state = compare(database)
    assert (state.verdict, state.heads, state.database) == (verdict, (HEAD,), database)


def test_a_postgres_that_does_not_answer_is_one_line_and_exit_1() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://orders_app:secret@127.0.0.1:{port}/orders"
    result = orders("migrate", "--check", DATABASE_URL=url)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "database" in x]
    assert line.startswith("cannot reach the database (OperationalError: "), line
    assert line.endswith(f"its schema's revision is unknown, this code's head {HEAD}"), line


def test_the_help_documents_every_exit_code() -> None:
    result = orders("migrate", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for code, meaning in [
        ("0", "at the head"),
        ("1", "the database cannot be reached"),
        ("2", "a setting missing or invalid"),
        ("3", "behind"),
        ("4", "a revision this code does not know"),
    ]:
        assert f"{code} {meaning}" in text, text
    assert "changes nothing" in text
