"""Postgres's Unix socket (`<dir>/.s.PGSQL.<port>`) must fit the 107 bytes of a socket address:
a clone under a long path puts it in a directory of the postgres user's under /tmp instead of the
data directory (cluster/services.sh, pg_socket_dir), and the server starts there and the scripts'
superuser connections (pg_admin) find it. Run with a RUN_DIR and a port of the test's own."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

SERVICES = ROOT / "cluster" / "services.sh"


def _services(run: Path, *args: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVICES), *args],
        env=sb.env(run, PG_PORT=str(port), NODE_ADDRESS="127.0.0.1"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _socket_path(directory: str, port: int) -> bytes:
    return f"{directory}/.s.PGSQL.{port}".encode()


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A RUN_DIR the postgres user can enter (so the data directory is $RUN/pg, not the /var/tmp
    fallback), under a path long enough that $RUN/pg/.s.PGSQL.<port> would not fit."""
    top = Path(tempfile.mkdtemp(prefix="pg-socket-"))
    try:
        top.chmod(0o755)
        run = top / ("a-clone-under-a-long-path-" * 4) / ".run"
        run.mkdir(parents=True)
        for path in (run, run.parent):
            path.chmod(0o755)
        yield run
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_short_path_keeps_the_socket_in_the_data_directory(tmp_path: Path) -> None:
    port = sb.free_port()
    data = _services(tmp_path, "pgdata", port=port).stdout.strip()
    found = _services(tmp_path, "pgsocket", port=port)
    assert found.returncode == 0, found.stderr
    assert data and found.stdout.strip() == data


def test_a_long_path_moves_the_socket_to_a_short_directory(run_dir: Path) -> None:
    port = 65535
    data = _services(run_dir, "pgdata", port=port).stdout.strip()
    socket_dir = _services(run_dir, "pgsocket", port=port).stdout.strip()
    assert data == str(run_dir / "pg") and len(_socket_path(data, port)) > 107
    assert socket_dir.startswith("/tmp/orders-pg-") and len(_socket_path(socket_dir, port)) <= 107


def _postmaster(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as the postgres user: root")
def test_postgres_starts_and_is_administered_under_a_long_path(run_dir: Path) -> None:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user: `make up` installs PostgreSQL")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        pytest.skip("no PostgreSQL: `make up` installs it")
    port = sb.free_port()
    data = run_dir / "pg"
    assert _services(run_dir, "pgdata", port=port).stdout.strip() == str(data)
    found = _services(run_dir, "pgsocket", port=port)
    assert found.returncode == 0, found.stderr
    socket_dir = Path(found.stdout.strip())
    # the fallback, named after this data directory (removed first: one a failed run left)
    assert socket_dir.parent == Path("/tmp") and socket_dir.name.startswith("orders-pg-")
    shutil.rmtree(socket_dir, ignore_errors=True)
    try:
        # the start creates the roles and settings through pg_admin, over the socket
        started = _services(run_dir, "start", "pg", port=port)
        log = (data / "server.log").read_text() if (data / "server.log").exists() else ""
        assert started.returncode == 0, started.stderr + log
        assert (socket_dir / f".s.PGSQL.{port}").is_socket()
        assert socket_dir.stat().st_uid == pwd.getpwnam("postgres").pw_uid
        assert socket_dir.stat().st_mode & 0o777 == 0o700
        again = _services(run_dir, "start", "pg", port=port)  # running: reload, roles again
        assert again.returncode == 0, again.stderr
    finally:
        stopped = _services(run_dir, "stop", "pg", port=port)
        pid = _postmaster(data)
        if pid is not None and sb.bash(run_dir, f"pid_is pg {pid}").returncode == 0:
            os.kill(pid, signal.SIGKILL)  # the server this test started, if the stop failed
    assert stopped.returncode == 0, stopped.stderr
    assert not socket_dir.exists()
