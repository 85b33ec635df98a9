"""The CPU sampler's groups (bench/procs.py) are kept per process, (pid, start time): a Ray
worker seen before it retitles itself is asked again, and a reused pid is another process."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bench.procs import CpuSampler

WORKER = ["/x/bin/python", "-u", "/x/site-packages/ray/_private/workers/default_worker.py"]


class _Ps:
    """A psutil stand-in listing `procs` (pid, cmdline, create_time, cpu seconds)."""

    def __init__(self) -> None:
        self.procs: list[tuple[int, list[str], float, float]] = []

    def process_iter(self, attrs: list[str]) -> list[Any]:
        return [
            SimpleNamespace(
                info={
                    "pid": pid,
                    "name": "python",
                    "cmdline": cmd,
                    "username": "me",
                    "cpu_times": SimpleNamespace(user=cpu, system=0.0),
                    "create_time": born,
                }
            )
            for pid, cmd, born, cpu in self.procs
        ]


def _sampler(ps: _Ps) -> CpuSampler:
    cpu = CpuSampler()
    cpu._ps = ps
    return cpu


def test_a_ray_worker_is_grouped_by_its_title_once_it_has_one() -> None:
    ps = _Ps()
    cpu = _sampler(ps)
    ps.procs = [(40, WORKER, 100.0, 1.0)]
    assert cpu._scan(record=True) == {"ray-system": 1.0}  # born since the last scan: from 0
    ps.procs = [(40, ["ray::InventoryShard.handle"], 100.0, 3.0)]
    assert cpu._scan(record=True) == {"actor:inventory": 2.0}


def test_a_reused_pid_is_another_process() -> None:
    ps = _Ps()
    cpu = _sampler(ps)
    ps.procs = [(41, ["ray::PaymentShard.handle"], 100.0, 50.0)]
    cpu._scan(record=True)
    # pid 41 now belongs to a newer process (of another kind), born before the last scan
    ps.procs = [(41, ["ray::ShippingActor.handle"], 150.0, 7.0)]
    cpu._t_last = 1e12  # the new process is not "born since the last scan": counts from now
    assert cpu._scan(record=True) == {"actor:shipping": 0.0}
    ps.procs = [(41, ["ray::ShippingActor.handle"], 150.0, 9.0)]
    assert cpu._scan(record=True) == {"actor:shipping": 2.0}


def test_the_postgres_backend_of_a_benchmark_connection_is_the_benchmarks(
    monkeypatch: Any,
) -> None:
    """The tracker's and the step phase's reads run in Postgres backends: counted as
    `postgres`, they made the platform's CPU per order grow over the step phase."""
    from adapters import benchdb

    monkeypatch.setattr(benchdb, "OWN_BACKENDS", {52})
    ps = _Ps()
    cpu = _sampler(ps)
    backend = ["postgres: orders_app orders 127.0.0.1(5000) idle"]
    ps.procs = [(51, backend, 100.0, 1.0), (52, backend, 100.0, 1.0)]
    cpu._scan(record=True)
    ps.procs = [(51, backend, 100.0, 2.0), (52, backend, 100.0, 4.0)]
    assert cpu._scan(record=True) == {"other": 1.0, "bench": 3.0}
