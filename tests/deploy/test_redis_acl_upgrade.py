"""`make up` on a stack whose Redis still runs with the ACL of an older version (the platform's
user on every key: `~* &*`, before 2026-12-07) restarts it with this version's: before, a Redis
that answered as the platform's user was kept, and with it the old rights, until it happened to
restart."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import redis

from adapters.redis_clients import ACL_RIGHTS
from tests.deploy import local_servers as ls
from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT


def _older_checkout(tmp_path: Path) -> Path:
    """A copy of cluster/ whose services.sh writes the older ACL."""
    old = tmp_path / "old"
    shutil.copytree(ROOT / "cluster", old / "cluster", symlinks=True)
    script = old / "cluster" / "services.sh"
    text = script.read_text()
    assert ACL_RIGHTS in text
    script.write_text(text.replace(ACL_RIGHTS, "~* &*"))
    return script


def test_a_redis_with_the_older_acl_is_restarted_with_this_ones(tmp_path: Path) -> None:
    ls.needed(Path(shutil.which("redis-server") or "/nonexistent"), "redis-server")
    run = tmp_path / "run"
    run.mkdir()
    port = sb.free_port()
    extra = {"REDIS_PORT": str(port), "REDIS_MAXMEMORY": "3mb", "NODE_ADDRESS": "127.0.0.1"}
    env = sb.env(run, **extra)
    services = str(ROOT / "cluster" / "services.sh")
    subprocess.run([_older_checkout(tmp_path), "start", "redis"], env=env, check=True, timeout=60)
    try:
        url = urlsplit(sb.bash(run, "load_credentials; derive_urls; echo $REDIS_URL", 60, **extra)
                       .stdout.strip())  # fmt: skip
        app = redis.Redis(port=port, username=url.username, password=url.password)
        assert app.set("x", "1")  # the older rights
        app.set("idem:kept", "1")
        app.close()
        subprocess.run([services, "start", "redis"], env=env, check=True, timeout=60)
        app = redis.Redis(port=port, username=url.username, password=url.password)
        try:
            app.get("x")
            raise AssertionError("the platform's user still reaches every key")
        except redis.exceptions.NoPermissionError:
            pass
        assert app.get("idem:kept") == b"1"  # the data came back from the append-only file
        app.close()
    finally:
        subprocess.run([services, "stop", "redis"], env=env, check=True, timeout=60)
