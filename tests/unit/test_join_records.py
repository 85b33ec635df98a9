"""What `make join` and `make leave` record (cluster/join.sh, leave.sh): a machine that once ran
a stack of its own is recognised as a worker node after it joins, and a worker node that is
gone (a reboot, the head stopped) can still be left, so that `make up` works again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_join_checks import ROOT, _join

_NODE_ENV = "NODE_ADDRESS=127.0.0.1\nRAY_GCS_PORT=6390\nKAFKA_AUTH=none\nSTACK_TLS=off\n"
_JOIN_ENV = "HEAD_ADDRESS=10.99.0.1\nNODE_ADDRESS=10.99.0.2\n"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "pids").mkdir(parents=True)
    return run


@pytest.fixture
def local_ray(run: Path) -> Iterator[None]:
    """A process this RUN_DIR's records take for its stack's Ray (cluster/common.sh, pid_is)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--temp-dir={run}/ray/t"]
    )
    (run / "pids" / "ray.pid").write_text(f"{proc.pid}\n")
    try:
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_join_forgets_the_machines_own_stopped_stack(tmp_path: Path, run: Path) -> None:
    """node.env of an earlier `make up` won over join.env: after the join, make status and
    make up took the machine for a head of its own."""
    (run / "node.env").write_text(_NODE_ENV)
    ran = _join(tmp_path, "prod", {})  # goes on, to be stopped by the mode check
    out = ran.stdout + ran.stderr
    assert "forgetting this machine's own stack's record" in out, out[-600:]
    assert not (run / "node.env").exists()
    assert "the head runs APP_ENV=prod" in ran.stderr, out[-600:]


@pytest.mark.usefixtures("local_ray")
def test_a_join_is_refused_while_the_machines_own_stack_runs(tmp_path: Path, run: Path) -> None:
    (run / "node.env").write_text(_NODE_ENV)
    ran = _join(tmp_path, "dev", {})
    assert ran.returncode == 1
    assert "runs a stack of its own (ray is up): make down first" in ran.stderr, ran.stderr[-600:]
    assert (run / "node.env").exists()


def _script(name: str, run: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NODE_ADDRESS", "HEAD_ADDRESS")}
    clean = {k: v for k, v in clean.items() if not k.startswith(("KAFKA_", "STACK_TLS", "TLS_"))}
    return subprocess.run(
        ["bash", str(ROOT / "cluster" / name)],
        env={**clean, "RUN_DIR": str(run)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("script", ["leave.sh", "down.sh"])
def test_a_worker_node_gone_already_can_still_be_left(run: Path, script: str) -> None:
    """leave.sh said "not joined" and kept join.env when the node's process had ended, and
    down.sh did not call it: make up then refused ("make leave first") for good."""
    (run / "join.env").write_text(_JOIN_ENV)
    (run / "pids" / "ray-worker.pid").write_text("999999999\n")  # no such process
    ran = _script(script, run)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-600:]
    assert "not running any more; forgetting the join" in ran.stdout
    assert not (run / "join.env").exists()


def test_leave_on_a_machine_that_never_joined_says_so(run: Path) -> None:
    ran = _script("leave.sh", run)
    assert ran.returncode == 0 and "not joined" in ran.stdout, ran.stdout + ran.stderr
