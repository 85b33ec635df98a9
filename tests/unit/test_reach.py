"""`python -m cluster.reach`, which `make join` runs before it starts Ray: each of the head's
services this machine cannot use is named with where and why, and the exit status is 1 (an
actor placed on such a machine retried its start for ever, saying so only in its own log)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_service_this_machine_cannot_use_is_named_and_the_join_stops() -> None:
    pg, redis, kafka = (_closed_port() for _ in range(3))
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://orders_app:x@127.0.0.1:{pg}/orders",
        "REDIS_URL": f"redis://orders:x@127.0.0.1:{redis}/0",
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
    }
    ran = subprocess.run(
        [sys.executable, "-m", "cluster.reach"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1, ran
    lines = [x for x in ran.stderr.splitlines() if x.startswith("cannot use ")]
    assert [x.split(":")[0] for x in lines] == [
        "cannot use postgres at 127.0.0.1",
        "cannot use redis at 127.0.0.1",
        "cannot use kafka at 127.0.0.1",
    ], ran.stderr
    assert f":{pg}/orders: OperationalError" in lines[0] and f":{kafka}: Kafka" in lines[2]
    assert "samenet" in ran.stderr and "Traceback" not in ran.stderr
    assert ":x@" not in ran.stderr  # no password in what it prints
