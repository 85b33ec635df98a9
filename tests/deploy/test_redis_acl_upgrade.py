"""`make up` on a stack whose Redis still runs with the ACL of an older version (the platform's
user on every key: `~* &*`, before 2026-12-07) restarts it with this version's: before, a Redis
that answered as the platform's user was kept, and with it the old rights, until it happened to
restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from adapters.redis_clients import ACL_RIGHTS
from tests.deploy import local_servers as ls
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
    run = tmp_path / "run"
    run.mkdir()
    server = ls.LocalRedis(run)
    server.start(_older_checkout(tmp_path))
    try:
        app = server.client()
        assert app.set("x", "1")  # the older rights
        app.set("idem:kept", "1")
        app.close()
        server.start()
        app = server.client()
        try:
            app.get("x")
            raise AssertionError("the platform's user still reaches every key")
        except redis.exceptions.NoPermissionError:
            pass
        assert app.get("idem:kept") == b"1"  # the data came back from the append-only file
        app.close()
    finally:
        server.stop()
