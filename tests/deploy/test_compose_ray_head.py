"""docker/ray-head.sh, the compose `ray-head` container's entry point, with stand-ins for Ray and
the CLI (no Docker engine here): it stops with the head node it started, during its deploy too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy import manifests as m

# stands for `ray`: `start --block` runs until SIGTERM and says it stopped; `status` answers
RAY = """#!/bin/bash
if [[ "$1" == start ]]; then
  trap 'echo ray-stopped >>"$LOG"; exit 0' TERM
  echo "ray-started $$" >>"$LOG"
  while :; do sleep 0.1; done
fi
exit 0
"""
# stands for the CLI's deploy: quick, or (DEPLOY_HANGS) running until SIGTERM
PYTHON = """#!/bin/bash
[[ -n "${DEPLOY_HANGS:-}" ]] || exit 0
trap 'echo deploy-stopped >>"$LOG"; exit 143' TERM
echo "deploying $$" >>"$LOG"
while :; do sleep 0.1; done
"""


def _logged(log: Path, line: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"never logged {line!r}: {log.read_text()!r}"
        time.sleep(0.05)


def _pids(log: Path) -> dict[str, int]:
    """The stand-ins' pids, by what they logged first ("ray-started", "deploying")."""
    rows = [line.split() for line in log.read_text().splitlines() if len(line.split()) == 2]
    return {name: int(pid) for name, pid in rows}


def _waits_on_ray_alone(head: subprocess.Popen[bytes], ray: int) -> None:
    """The quick deploy has returned: the script's one child left is Ray."""
    children = Path(f"/proc/{head.pid}/task/{head.pid}/children")
    deadline = time.monotonic() + 10
    while [int(c) for c in children.read_text().split()] != [ray]:
        assert time.monotonic() < deadline, "the script never came to wait on Ray alone"
        time.sleep(0.05)


@pytest.mark.parametrize("during", ["serving", "deploy"])
def test_the_head_passes_sigterm_on_to_ray_and_waits_for_it(tmp_path: Path, during: str) -> None:
    """`docker compose stop` sends SIGTERM to the script (PID 1): untrapped, the script ended
    (or, as PID 1, ignored it until compose killed the container) with Ray still running; and
    a trap alone would wait for a deploy in the foreground to end first."""
    log = tmp_path / "ray.log"
    for name, body in (("ray", RAY), ("python", PYTHON)):
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LOG": str(log), "APP_ENV": "dev"}
    if during == "deploy":
        env["DEPLOY_HANGS"] = "1"
    head = subprocess.Popen(["bash", str(m.ROOT / "docker" / "ray-head.sh")], env=env)
    try:
        _logged(log, "ray-started")
        if during == "deploy":
            _logged(log, "deploying")
        else:
            _waits_on_ray_alone(head, _pids(log)["ray-started"])
        os.kill(head.pid, signal.SIGTERM)
        assert head.wait(timeout=10) == 143
        _logged(log, "ray-stopped", 5)
        if during == "deploy":
            _logged(log, "deploy-stopped", 5)
    finally:
        if head.poll() is None:
            head.kill()
        for pid in _pids(log).values() if log.exists() else []:  # a stand-in left running
            with contextlib.suppress(OSError):
                if str(tmp_path) in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
