"""docker/ray-head.sh, the compose `ray-head` container's entry point, with stand-ins for Ray and
the CLI (no Docker engine here): it stops with the head node it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.deploy import manifests as m

# stands for `ray`: `start --block` runs until SIGTERM and says it stopped; `status` answers
RAY = """#!/bin/bash
if [[ "$1" == start ]]; then
  trap 'echo stopped >>"$LOG"; exit 0' TERM
  echo started >>"$LOG"
  while :; do sleep 0.1; done
fi
exit 0
"""


def test_the_head_passes_sigterm_on_to_ray_and_waits_for_it(tmp_path: Path) -> None:
    """`docker compose stop` sends SIGTERM to the script (PID 1): untrapped, the script ended
    (or, as PID 1, ignored it until compose killed the container) with Ray still running."""
    log = tmp_path / "ray.log"
    for name, body in (("ray", RAY), ("python", "#!/bin/sh\nexit 0\n")):
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LOG": str(log), "APP_ENV": "dev"}
    head = subprocess.Popen(
        ["bash", str(m.ROOT / "docker" / "ray-head.sh")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert head.stdout is not None
        line = head.stdout.readline()  # after deploy: the script waits on Ray
        assert "ray-head: API on" in line, line
        os.kill(head.pid, signal.SIGTERM)
        assert head.wait(timeout=10) == 143
        deadline = time.monotonic() + 5
        while "stopped" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "Ray was never told to stop"
            time.sleep(0.05)
    finally:
        if head.poll() is None:
            head.kill()
        subprocess.run(["pkill", "-f", f"{tmp_path}/ray start"], check=False)
