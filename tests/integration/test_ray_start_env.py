"""What `cluster/services.sh` passes to `ray start` reaches the platform's processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import get_settings


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


def _thread_nices(pid: int) -> set[int]:
    nices = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        nices.add(int(stat[stat.rfind(")") + 2 :].split()[16]))
    return nices


_WORKER_NICENESS = int(os.environ.get("RAY_WORKER_NICENESS", "0"))


def test_ray_starts_its_workers_at_the_configured_niceness() -> None:
    # the Serve controller is a Ray worker that keeps the niceness Ray gave it
    pids = _processes("ray::ServeController")
    assert pids, "no Serve controller: is the stack up?"
    assert {_nice(pid) for pid in pids} == {_WORKER_NICENESS}  # Ray's own default would be 15


@pytest.mark.parametrize(
    ("title", "setting"),
    [
        ("ray::OutboxRelay", "pipeline_niceness"),
        ("ray::KafkaBridge", "pipeline_niceness"),
        ("ray::InventoryShard", "pipeline_niceness"),
        ("ray::NotificationActor", "pipeline_niceness"),
        ("ray::ServeReplica:orders:api-gateway", "gateway_niceness"),
    ],
)
def test_every_thread_of_a_platform_process_runs_at_its_niceness(title: str, setting: str) -> None:
    pids = _processes(title)
    assert pids, f"no {title} process: is the stack up?"
    expected = getattr(get_settings(), setting)
    if expected < _WORKER_NICENESS and os.geteuid() != 0:
        expected = _WORKER_NICENESS  # not allowed to go first: it keeps what Ray gave it
    for pid in pids:
        assert _thread_nices(pid) == {expected}, f"{title} pid {pid}"


def test_the_gateway_runs_serve_throughput_optimized_behind_haproxy() -> None:
    (pid, *_) = _processes("ray::ServeReplica:orders:api-gateway")
    env = _environ(pid)
    assert env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == os.environ.get(
        "RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"
    )
    assert env.get("RAY_SERVE_ENABLE_HA_PROXY") == os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1")
