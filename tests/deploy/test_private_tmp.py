"""The two predictable names the stack's scripts use in /tmp, where any local user may have made
them first: HAProxy's fallback directory (cluster/common.sh, haproxy_dir: it holds haproxy.cfg
with the Ray token) and the namespace harness's owner file (cluster/netns-lib.sh: the RUN_DIR it
names is taken down as a dead harness's). A symlink or another user's file there is refused,
never adopted; the checks run in a RUN_DIR of their own."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="another user's files need root")
NOBODY = 65534


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A RUN_DIR too long for HAProxy's socket paths, and the /tmp directory it falls back to."""
    run = tmp_path / "a-run-dir-longer-than-29-characters"
    found = sb.bash(run, "haproxy_dir")
    assert found.returncode == 0, found.stderr
    fallback = Path(found.stdout.strip())
    assert fallback.parent == Path("/tmp") and fallback.name.startswith("orders-haproxy-")
    _remove(fallback)
    yield run, fallback
    _remove(fallback)


def test_the_haproxy_fallback_is_made_private(haproxy: tuple[Path, Path]) -> None:
    run, fallback = haproxy
    result = sb.bash(run, 'ray_env && printf "%s\\n" "${RAY_ENV[@]}"')
    assert result.returncode == 0, result.stderr
    assert f"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC={fallback}/haproxy.cfg" in result.stdout
    stat = fallback.lstat()
    assert fallback.is_dir() and stat.st_uid == os.geteuid() and stat.st_mode & 0o777 == 0o700
    assert sb.bash(run, "remove_haproxy_dir").returncode == 0 and not fallback.exists()


@pytest.mark.parametrize("planted", ["symlink", "another user's directory"])
def test_a_planted_haproxy_fallback_is_refused(
    haproxy: tuple[Path, Path], tmp_path: Path, planted: str
) -> None:
    run, fallback = haproxy
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o777)
    os.chown(theirs, NOBODY, NOBODY)
    if planted == "symlink":
        fallback.symlink_to(theirs)
    else:
        fallback.mkdir()
        fallback.chmod(0o777)
        os.chown(fallback, NOBODY, NOBODY)
    result = sb.bash(run, "ray_env")
    assert result.returncode == 1
    assert f"{fallback} is a symlink, not a directory, or another user's" in result.stderr
    assert theirs.stat().st_mode & 0o777 == 0o777 and not any(theirs.iterdir())
    removed = sb.bash(run, "remove_haproxy_dir")
    assert removed.returncode == 0 and "is not this user's: left alone" in removed.stdout
    assert fallback.is_symlink() if planted == "symlink" else fallback.is_dir()


# netns-lib.sh's set-up, as cluster/netns.sh does it
NETNS = (
    f'ROOT={ROOT} P="$PREFIX" SUBNET=10.250.0 HEAD_IP=10.250.0.2\n'
    'source "$ROOT/cluster/netns-lib.sh"\n'
)


@pytest.fixture
def owner() -> Iterator[Path]:
    path = Path(f"/tmp/t{os.getpid() % 100000}-netns.owner")
    _remove(path)
    yield path
    _remove(path)


def test_the_owner_file_of_this_user_is_read(owner: Path, tmp_path: Path) -> None:
    prefix = owner.name.removesuffix("-netns.owner")
    owner.write_text("/tmp/netns-somewhere\n")
    result = sb.bash(tmp_path, NETNS + "owner_of", PREFIX=prefix)
    assert result.returncode == 0 and result.stdout.strip() == "/tmp/netns-somewhere"


@pytest.mark.parametrize("planted", ["symlink", "another user's file"])
def test_a_planted_owner_file_is_refused(owner: Path, tmp_path: Path, planted: str) -> None:
    prefix = owner.name.removesuffix("-netns.owner")
    target = tmp_path / "claim"
    target.write_text(f"{tmp_path / 'victim'}\n")
    if planted == "symlink":
        owner.symlink_to(target)
    else:
        shutil.copy(target, owner)
        os.chown(owner, NOBODY, NOBODY)
    for command in ("owner_file_ok", "mine", 'echo "owner=$(owner_of)"'):
        result = sb.bash(tmp_path, NETNS + command, PREFIX=prefix)
        assert f"{owner} is a symlink, not a file, or another user's" in result.stderr, command
        assert "victim" not in result.stdout


@pytest.fixture
def pg_fallback() -> Iterator[Path]:
    """A name like Postgres's fallback data directory (cluster/common.sh, pg_fallback_data),
    not the stack's own."""
    path = Path(f"/var/tmp/ray-orders-pg-test{os.getpid() % 100000}")
    _remove(path)
    yield path
    _remove(path)


@pytest.mark.parametrize(
    ("planted", "ok"),
    [("nothing", True), ("postgres's directory", True), ("symlink", False)]
    + [("another user's directory", False), ("a file", False)],
)
def test_a_planted_postgres_fallback_is_refused(
    pg_fallback: Path, tmp_path: Path, planted: str, ok: bool
) -> None:
    """Root made, chowned and chmodded that /var/tmp name, following a symlink another user
    planted there (or adopting their directory)."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if planted == "symlink":
        pg_fallback.symlink_to(theirs)
    elif planted == "a file":
        pg_fallback.write_text("")
    elif planted != "nothing":
        pg_fallback.mkdir()
        owner = NOBODY if planted.startswith("another") else pwd.getpwnam("postgres").pw_uid
        os.chown(pg_fallback, owner, owner)
    result = sb.bash(tmp_path, f"pg_data_ok {pg_fallback}")
    assert (result.returncode == 0) is ok, (planted, result.stderr)
