"""The stack's infrastructure refuses clients without its credentials, and the platform's
database role holds no more than its tables need (docs/security.md, "Credentials")."""

from __future__ import annotations

import getpass
import os
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict

from core.settings import Settings
from tests.conftest import node_address

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("RUN_DIR") or ROOT / ".run")


def _without_password(url: str, **changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {**conninfo_to_dict(url), **changes}
    info.pop("password", None)
    # never a password from the environment or ~/.pgpass
    return {**info, "passfile": os.devnull, "connect_timeout": 5}


@pytest.fixture()
def no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_pg_env")
@pytest.mark.parametrize("user", ["orders_app", "orders", "postgres"])
def test_postgres_refuses_tcp_clients_without_a_password(settings: Settings, user: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="no password supplied|pg_hba.conf"):
        psycopg.connect(**_without_password(settings.database_url, user=user))


@pytest.mark.usefixtures("no_pg_env")
@pytest.mark.parametrize("user", ["orders_app", "postgres"])
def test_postgres_refuses_a_wrong_password(settings: Settings, user: str) -> None:
    info = {**_without_password(settings.database_url, user=user), "password": "guess"}
    with pytest.raises(psycopg.OperationalError, match="password authentication|pg_hba.conf"):
        psycopg.connect(**info)


def _pg_socket_dir(port: int) -> str:
    """The directory of the server's Unix socket (`.s.PGSQL.<port>`), from /proc/net/unix."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        path = line.split()[-1]
        if path.endswith(f"/.s.PGSQL.{port}"):
            return path.rsplit("/", 1)[0]
    raise AssertionError(f"no Postgres socket for port {port}")


@pytest.mark.usefixtures("no_pg_env")
def test_postgres_socket_needs_a_password_too_and_the_superuser_is_os_only(
    settings: Settings,
) -> None:
    host = _pg_socket_dir(urlsplit(settings.database_url).port or 5432)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**_without_password(settings.database_url, host=host))
    if getpass.getuser() != "postgres":  # peer: only the OS user postgres is the superuser
        with pytest.raises(psycopg.OperationalError, match="Peer authentication failed"):
            psycopg.connect(**_without_password(settings.database_url, host=host, user="postgres"))


@pytest.mark.parametrize("url_variable", ["DATABASE_URL", "MIGRATION_DATABASE_URL"])
def test_no_role_of_the_platform_has_a_role_attribute(
    settings: Settings, url_variable: str
) -> None:
    url = settings.database_url if url_variable == "DATABASE_URL" else os.environ[url_variable]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == (False, False, False, False, False)


FORBIDDEN_TO_THE_APP = [
    "CREATE ROLE intruder LOGIN SUPERUSER",
    "DROP TABLE orders",
    "TRUNCATE orders",
    "ALTER TABLE orders ADD COLUMN intruder int",
    "CREATE TABLE intruder (x int)",
    "COPY orders TO '/tmp/orders-copy'",
    "SET ROLE orders",
]


@pytest.mark.parametrize("statement", FORBIDDEN_TO_THE_APP)
def test_the_app_role_cannot_change_schema_roles_or_files(
    settings: Settings, statement: str
) -> None:
    # in a transaction that is always rolled back: were the statement allowed, nothing stays
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("SET LOCAL lock_timeout = '2s'")
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        finally:
            conn.rollback()


def test_the_app_role_reaches_only_its_own_database(settings: Settings) -> None:
    url = urlsplit(settings.database_url)
    other = url._replace(path="/postgres").geturl()
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf|permission denied"):
        psycopg.connect(other, connect_timeout=5)


def _redis(settings: Settings, **kwargs: Any) -> redis.Redis:
    url = urlsplit(settings.redis_url)
    return redis.Redis(host=url.hostname or "127.0.0.1", port=url.port or 6379, **kwargs)


@pytest.mark.parametrize(
    "credentials",
    [{}, {"password": "guess"}, {"username": "default", "password": "x"}, {"username": "orders"}],
)
def test_redis_refuses_anonymous_and_wrong_credentials(
    settings: Settings, credentials: dict[str, str]
) -> None:
    client = _redis(settings, socket_timeout=5, **credentials)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            client.ping()
    finally:
        client.close()


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "GET", "dir"),
        ("KEYS", "no-such-key-*"),
        ("ACL", "LIST"),
        ("MODULE", "LIST"),
        ("SCAN", "0"),  # key names beyond its own (the GCS's in Kubernetes), unbounded by ~
        ("RANDOMKEY",),
    ],
)
def test_the_platform_redis_user_has_no_admin_commands(
    rds: redis.Redis, command: tuple[str, ...]
) -> None:
    assert rds.acl_whoami() == "orders"
    with pytest.raises(redis.exceptions.NoPermissionError):
        rds.execute_command(*command)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    "command", [("SET", "x", "1"), ("HGETALL", "RAYnamespace@KV"), ("PUBLISH", "c", "x")]
)
def test_the_platform_redis_user_reaches_its_own_keys_and_channels_only(
    rds: redis.Redis, command: tuple[str, ...]
) -> None:
    """adapters/redis_clients.py, ACL_RIGHTS: in Kubernetes the GCS's tables share its Redis."""
    with pytest.raises(redis.exceptions.NoPermissionError):
        rds.execute_command(*command)  # type: ignore[no-untyped-call]


def _ray_address() -> str:
    gcs = f"{node_address()}:{os.environ.get('RAY_GCS_PORT', '6390')}"
    return os.environ.get("RAY_ADDRESS") or gcs


def test_ray_refuses_a_client_without_its_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    env.update(RAY_AUTH_MODE="disabled", HOME=str(RUN))  # no ~/.ray/auth_token either
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ray"), "status", "--address", _ray_address()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "auth" in (proc.stdout + proc.stderr).lower()


def test_the_credentials_file_is_private_and_ignored_by_git() -> None:
    path = RUN / "credentials.env"
    assert path.is_file(), "make up writes the credentials here"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
    assert ignored.returncode == 0


@pytest.mark.parametrize("name", ["redis", "kafka"])
def test_redis_and_kafka_data_are_private(name: str) -> None:
    """Redis's files hold cached order responses and customer ids, Kafka's log every order's
    events: other users of the machine may not read them (Postgres's data directory is 700 by
    initdb)."""
    path = RUN / name
    if not path.is_dir():
        pytest.skip(f"{name} does not keep its data in this checkout's {RUN}")
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, oct(path.stat().st_mode)


def test_rays_session_directories_are_private() -> None:
    """Ray makes its temp directory and the sessions in it mode 777; the stack keeps them
    inside a `$RUN/ray` of mode 700, so another user can neither open the raylet's socket nor
    put files where Ray unpacks a job's code (docs/security.md, "Unix sockets")."""
    pid_file = RUN / "pids" / "ray.pid"
    argv = _cmdline(pid_file.read_text().strip()) if pid_file.is_file() else []
    temp = [a.removeprefix("--temp-dir=") for a in argv if a.startswith("--temp-dir=")]
    if not temp or not Path(temp[0]).is_relative_to(RUN):
        pytest.skip(f"no Ray head of this checkout's {RUN} is running")
    if Path(temp[0]) == RUN / "ray":
        pytest.skip("the running head was started before its temp directory moved: make down")
    assert Path(temp[0]) == RUN / "ray" / "t"
    assert stat.S_IMODE((RUN / "ray").stat().st_mode) & 0o077 == 0
    sockets = RUN / "ray" / "t" / "session_latest" / "sockets"
    assert (sockets / "raylet").is_socket()
    if os.geteuid() != 0 or not _nobody_may("test", "-x", str(RUN)):
        return  # (a checkout no other user can reach at all: the modes above are the test)
    assert not _nobody_may("ls", str(sockets))  # a user of no privilege tries to look inside
    assert _nobody_may("ls", str(RUN))  # (the probe itself works)


def _nobody_may(*command: str) -> bool:
    probe = ["runuser", "-u", "nobody", "--", *command]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _cmdline(pid: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]
