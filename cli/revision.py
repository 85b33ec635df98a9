"""`orders migrate --check`: whether the database's schema is at the head revision of this
code's migrations, told in one line on stderr and by the exit code, so that a script can wait
on it (the Ray head's init container on Kubernetes, k8s/services/rayservice.yaml). Changes
nothing: the database is read in a read-only transaction."""

from __future__ import annotations

import psycopg
import typer

from adapters.revisions import Verdict, code_heads, compare, database_revisions
from core.errors import one_line

AT_HEAD = 0
UNREADABLE = 1  # Postgres does not answer, refuses the login or the read: revision unknown
# 2: a setting missing or invalid (the CLI's own, cli.main)
BEHIND = 3  # an older revision of this code's, or none: `orders migrate` brings it to the head
UNKNOWN = 4  # a revision this code does not have: a newer image migrated it

_CODES = {Verdict.AT_HEAD: AT_HEAD, Verdict.BEHIND: BEHIND, Verdict.UNKNOWN: UNKNOWN}
_NEXT = {
    Verdict.AT_HEAD: "",
    Verdict.BEHIND: ": `orders migrate` upgrades it (Kubernetes: job/orders-init, ADR-010)",
    Verdict.UNKNOWN: ": a newer image migrated it; run that image, or downgrade the schema with it",
}


def _names(revisions: tuple[str, ...]) -> str:
    return "+".join(revisions) if revisions else "no revision (never migrated)"


def check(database_url: str) -> int:
    """Compare the database's revision with this code's head; print one line saying both on
    stderr and return the exit code: AT_HEAD, BEHIND, UNKNOWN, or UNREADABLE when Postgres does
    not answer or refuses (the message says why)."""
    heads = _names(code_heads())
    try:
        state = compare(database_revisions(database_url))
    except psycopg.OperationalError as exc:
        typer.echo(
            f"cannot reach the database ({one_line(exc)}): its schema's revision is unknown, "
            f"this code's head {heads}",
            err=True,
        )
        return UNREADABLE
    except psycopg.Error as exc:
        typer.echo(
            f"cannot read the schema's revision ({one_line(exc)}): this code's head {heads}",
            err=True,
        )
        return UNREADABLE
    typer.echo(
        f"schema {state.verdict.value}: database at {_names(state.database)}, "
        f"this code's head {heads}{_NEXT[state.verdict]}",
        err=True,
    )
    return _CODES[state.verdict]
