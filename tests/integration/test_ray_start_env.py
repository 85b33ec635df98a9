"""What `cluster/services.sh` passes to `ray start` reaches the platform's processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _processes(title: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(title.encode()):
            pids.append(int(entry.name))
    return pids


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[16])


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.parametrize("title", ["ray::OutboxRelay", "ray::ServeReplica:orders:api-gateway"])
def test_platform_workers_run_at_the_configured_niceness(title: str) -> None:
    pids = _processes(title)
    assert pids, f"no {title} process: is the stack up?"
    expected = int(os.environ.get("RAY_WORKER_NICENESS", "0"))
    assert {_nice(pid) for pid in pids} == {expected}  # Ray's own default would be 15


def test_the_gateway_runs_serve_throughput_optimized_behind_haproxy() -> None:
    (pid, *_) = _processes("ray::ServeReplica:orders:api-gateway")
    env = _environ(pid)
    assert env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == os.environ.get(
        "RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"
    )
    assert env.get("RAY_SERVE_ENABLE_HA_PROXY") == os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1")
