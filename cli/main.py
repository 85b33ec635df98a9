"""`orders` command line: the stack's status, one order (get, watch live), tokens, migrations,
seeding, topics, deployment, DLQ tools."""

from __future__ import annotations

import asyncio
import sys
import time
from importlib import metadata
from typing import Annotated, Any, NoReturn

import httpx
import psycopg
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from sqlalchemy.exc import OperationalError as DatabaseUnreachable  # Alembic's (migrate)

from cli import chaos, diagnose, dlq, order, status
from core.errors import one_line
from core.settings import Settings, SettingsError, get_settings


class _Operations(typer.Typer):
    """The command line: an expected failure (a setting missing or invalid, a part of the stack
    not answering) is a message and an exit code (2, 1), never a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SettingsError as exc:  # raised past typer: its Exit is not understood here
            console.print(f"[red]{exc}[/red]")
            raise SystemExit(2) from None
        except (
            KafkaError,
            httpx.TransportError,
            psycopg.OperationalError,
            DatabaseUnreachable,
            OSError,
        ) as exc:
            if isinstance(exc, DatabaseUnreachable):  # SQLAlchemy's wrapper: psycopg's own says it
                exc = exc.orig if isinstance(exc.orig, Exception) else exc
            name = type(exc).__name__  # aiokafka's messages often start with it already
            text = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
            console.print(f"[red]{text}[/red]")
            console.print("a part of the stack does not answer: `orders status` shows which")
            raise SystemExit(1) from None


app = _Operations(
    help="Ray orders platform operations.", no_args_is_help=True, rich_markup_mode="markdown"
)


def _show_version(show: bool) -> None:
    if show:
        print(f"orders (ray-orders) {metadata.version('ray-orders')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Ray orders platform operations."""


app.command("status")(status.status)
app.command("get")(order.get)
app.command("watch")(order.watch)
app.add_typer(dlq.app, name="dlq")
app.command("chaos")(chaos.main)
app.command("stacks")(diagnose.stacks)
console = Console(stderr=True)


def _refuse(exc: SettingsError) -> NoReturn:
    """A missing or invalid setting: its message, exit 2."""
    console.print(f"[red]{exc}[/red]")
    raise typer.Exit(2) from None


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        _refuse(exc)


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="subject (principal)")] = "customer1",
    role: Annotated[list[str] | None, typer.Option(help="role; repeat for several")] = None,
    ttl: Annotated[int | None, typer.Option(help="seconds until exp; default: none")] = None,
) -> None:
    """Print a demo HS256 JWT signed with JWT_SECRET (aud=orders-api, iss=orders-demo); refuses
    claims the gateway would refuse (exit 2)."""
    from core.auth import make_token, token_problem

    roles = role or ["customer"]
    problem = token_problem(sub, roles, ttl)
    if problem is not None:
        raise typer.BadParameter(problem)
    s = _settings()
    print(
        make_token(
            sub,
            roles,
            secret=s.jwt_secret,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            ttl_s=ttl,
        )
    )


@app.command()
def migrate(
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="change nothing: is the schema at this code's head? (exit codes above)"
        ),
    ] = False,
) -> None:
    """Apply the Alembic migrations (idempotent), as the schema's owner
    (MIGRATION_DATABASE_URL, else DATABASE_URL).

    `--check` changes nothing: it reads the database's revision as the runtime role
    (DATABASE_URL, read-only) and prints one line naming it and this code's head. Exit codes:
    **0** at the head; **1** the database cannot be reached or read; **2** a setting missing
    or invalid; **3** behind (an older revision, or none: `orders migrate` upgrades it);
    **4** a revision this code does not know (a newer image's)."""
    if check:
        from cli.revision import check as check_revision

        raise typer.Exit(check_revision(_settings().database_url))
    from alembic import command
    from alembic.config import Config

    from adapters.revisions import MIGRATIONS

    _settings()
    # the checkout's (or the image's) files, wherever the command is run from: `alembic.ini`
    # names its scripts relative to the working directory
    config = Config(str(MIGRATIONS.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    command.upgrade(config, "head")


@app.command()
def seed() -> None:
    """Insert the demo catalog SKU-1…SKU-100 with stock (existing rows are left alone), as the
    schema's owner (MIGRATION_DATABASE_URL, else DATABASE_URL)."""
    from adapters.catalog import seed as seed_rows
    from core.owner import owner_database_url
    from domain.catalog import seed_catalog

    items = seed_catalog()
    _settings()  # settings that do not load stop here, with what to fix
    seed_rows(owner_database_url(), items)
    console.print(f"catalog: {len(items)} SKUs present")


@app.command()
def topics(
    check: Annotated[bool, typer.Option(help="only check; exit 1 if any is missing")] = False,
) -> None:
    """Create the Kafka topics (seed topics, additions and their .dlq)."""
    from adapters.kafka import TopicsRefused, ensure_topics, missing_topics

    s = _settings()
    if check:
        missing = asyncio.run(missing_topics(s.kafka_bootstrap))
        if missing:
            console.print(f"missing topics: {', '.join(missing)}")
            raise typer.Exit(1)
        return
    deadline = time.monotonic() + 90
    while True:
        try:
            created = asyncio.run(ensure_topics(s.kafka_bootstrap, s.kafka_partitions))
            break
        # the broker answered, and refused (every aiokafka error is a RuntimeError too: a
        # broker still starting, "Unable to bootstrap", ended the command at once)
        except TopicsRefused as exc:
            console.print(f"[red]kafka at {s.kafka_bootstrap}: {exc}[/red]")
            raise typer.Exit(1) from None
        except Exception as exc:  # a broker still starting answers errors of all kinds
            if time.monotonic() > deadline:
                console.print(
                    f"[red]kafka at {s.kafka_bootstrap}: topics not made within 90 s: "
                    f"{one_line(exc)}[/red]"
                )
                raise typer.Exit(1) from None
            time.sleep(1)
    console.print(
        f"topics: created or grown {len(created)}" + (f" ({', '.join(created)})" if created else "")
    )


@app.command()
def deploy(
    restart: Annotated[bool, typer.Option(help="replace running actors (new code)")] = False,
) -> None:
    """Start the platform's actors and the Serve app on the running Ray cluster (idempotent)."""
    from cluster.deploy import deploy as run_deploy

    settings = _settings()
    try:
        run_deploy(settings, restart=restart)
    except SettingsError as exc:  # the launcher's own knobs (STAGE_NICENESS)
        _refuse(exc)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
