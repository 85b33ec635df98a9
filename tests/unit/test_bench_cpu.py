"""CPU milliseconds per completed order (bench.cpu) and where the report takes them from."""

from __future__ import annotations

import os
import uuid

import pytest

from bench import speed
from bench.cpu import ms_per_order, seconds_in, steal_pct, window_ms_per_order
from bench.mainrun import Load, MainRun, busy_seconds, summary
from bench.procs import classify
from bench.tracker import Outcome, Tracker
from bench.workload import Mix

# one sample a second from t=100 (the sampler started at 100): cores used in the second before
SERIES = [(100.0 + i, {"postgres": 0.5, "actor:payment": 0.25}) for i in range(1, 11)]


def test_seconds_in_sums_cores_times_span_inside_the_window() -> None:
    assert seconds_in(SERIES, 100.0, 100.0, 110.0) == {"postgres": 5.0, "actor:payment": 2.5}
    # a sample straddling an edge counts for its part inside: (102.5, 105] is 2.5 s
    got = seconds_in(SERIES, 100.0, 102.5, 105.0)
    assert got["postgres"] == pytest.approx(1.25)
    assert seconds_in(SERIES, 100.0, 200.0, 210.0) == {}


def test_seconds_in_uses_each_samples_own_span() -> None:
    uneven = [(101.0, {"kafka": 1.0}), (104.0, {"kafka": 0.5}), (105.0, {"kafka": 2.0})]
    assert seconds_in(uneven, 100.0, 100.0, 105.0) == {"kafka": pytest.approx(1 + 1.5 + 2)}


def test_ms_per_order_divides_by_completed_orders_with_platform_and_total() -> None:
    got = ms_per_order({"postgres": 3.0, "loadgen": 1.0, "actor:payment": 1.5}, 1000)
    assert got == {
        "postgres": 3.0,
        "actor:payment": 1.5,
        "loadgen": 1.0,
        "platform": 4.5,  # without the load generator
        "total": 5.5,
    }
    assert list(got)[:3] == ["postgres", "actor:payment", "loadgen"]  # largest first
    assert ms_per_order({"postgres": 3.0}, 0) == {}


def test_window_ms_per_order() -> None:
    got = window_ms_per_order(SERIES, 100.0, 100.0, 110.0, 2500)
    assert got["postgres"] == 2.0 and got["actor:payment"] == 1.0 and got["total"] == 3.0


def test_main_run_summary_reports_cpu_per_order_of_its_steady_window() -> None:
    load = Load("http://127.0.0.1:8080", 10, 100.0, 0, 1, Mix(), 1, 5.0, 2.0, 5.0)
    run = MainRun(load, t0=100.0, load_end=110.0)
    run.cpu_series, run.cpu_started = SERIES, 100.0
    tracker = Tracker("postgresql://unused")
    for i in range(1000):  # 100 a second over [100, 110), 800 inside the steady [102, 110)
        at = 100.0 + i / 100
        tracker.outcomes[uuid.uuid4()] = Outcome(
            "DELIVERED", at - 0.5, at, (None, None, None, at - 0.2)
        )
    # a core stolen throughout the ramp-up, none in the steady window's first half, 0.5 after
    run.steal_series = [
        (100.0 + t, 1.0 if t <= 2 else (0.0 if t <= 6 else 0.5)) for t in range(1, 11)
    ]
    figures = summary(run, tracker)
    got = figures["cpu_ms_per_order"]
    assert got["postgres"] == pytest.approx(0.5 * 8 * 1000 / 800)
    assert got["actor:payment"] == pytest.approx(0.25 * 8 * 1000 / 800)
    cpus = os.cpu_count() or 1
    assert figures["cpu_steal_pct"] == pytest.approx(round(100 * 0.5 * 4 / (8 * cpus), 1))
    assert figures["cpu_unit_ms"] is None  # no progress line, no unit timed
    assert figures["maintenance_s"] == 0  # no sample taken


def test_maintenance_seconds_count_the_samples_of_the_window_with_a_vacuum_running() -> None:
    series = [(100.0 + t, n) for t, n in enumerate([1, 1, 0, 2, 1, 0, 0, 1])]
    assert busy_seconds(series, 102.0, 106.0) == 2  # t = 103 and 104; 101 and 107 are out
    assert busy_seconds(series, 100.0, 107.0) == 5
    assert busy_seconds([], 100.0, 107.0) == 0


def test_cpu_unit_ms_is_the_median_of_the_units_timed_in_the_window() -> None:
    series = [(101.0, 90.0), (103.0, 30.0), (105.0, 45.0), (107.0, 31.0), (111.0, 80.0)]
    assert speed.median_in(series, 102.0, 110.0) == 31.0  # 30, 45, 31: the ramp-up's 90 is out
    assert speed.median_in(series, 108.0, 110.0) is None
    assert 0 < speed.unit_ms() < 10_000


def test_classify_new_actor_classes_under_their_own_name() -> None:
    assert classify("python", ["ray::PaymentShard.authorize"], "u") == "actor:payment"
    assert classify("python", ["ray::HAProxyManager"], "u") == "gateway:proxy"
    assert classify("python", ["ray::StageActor.run"], "u") == "actor:StageActor"
    assert classify("python", ["ray::IDLE"], "u") == "ray-system"
    assert classify("python", ["ray::DashboardAgent"], "u") == "ray-system"
    assert classify("python", ["ray::some_task()"], "u") == "ray-system"


class _Proc:
    def __init__(self, pid: int, title: str, cpu_s: float) -> None:
        times = type("T", (), {"user": cpu_s, "system": 0.0})()
        self.info = {
            "pid": pid,
            "name": "python",
            "cmdline": [title],
            "username": "u",
            "cpu_times": times,
            "create_time": 0.0,
        }


def test_an_idle_ray_worker_that_becomes_an_actor_counts_as_that_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import procs

    scans = iter(
        [
            [_Proc(7, "ray::IDLE", 1.0), _Proc(8, "ray::ShippingActor", 1.0)],
            [_Proc(7, "ray::IDLE", 1.5), _Proc(8, "ray::ShippingActor", 2.0)],
            [_Proc(7, "ray::PaymentShard", 3.5), _Proc(8, "ray::ShippingActor", 2.5)],
        ]
    )
    # the machine's steal counter: still in the first interval, 1 s more in the second
    stolen = iter([10.0, 10.0, 11.0])
    fake = type(
        "PS",
        (),
        {
            "process_iter": staticmethod(lambda attrs: next(scans)),
            "cpu_times": staticmethod(lambda: type("C", (), {"steal": next(stolen)})()),
        },
    )()
    monkeypatch.setattr(procs, "psutil_module", lambda: fake)
    sampler = procs.CpuSampler()
    sampler.start()
    sampler.sample()
    assert sampler.steal_cores == 0.0
    sampler.sample()
    assert sampler.totals == {
        "ray-system": pytest.approx(0.5),
        "actor:shipping": pytest.approx(1.5),
        "actor:payment": pytest.approx(2.0),
    }
    assert sampler.steal_cores > 0.0
    assert [c > 0 for _, c in sampler.steal_series] == [False, True]


def test_steal_pct_is_the_stolen_share_of_the_machines_cpu_time_in_the_window() -> None:
    # 1-second samples from t=100 on a 2-CPU machine: 0.5 core stolen during 101-103, none else
    series = [(101.0, 0.0), (102.0, 0.5), (103.0, 0.5), (104.0, 0.0)]
    assert steal_pct(series, 100.0, 100.0, 104.0, 2) == pytest.approx(12.5)  # 1 s of 8
    assert steal_pct(series, 100.0, 101.0, 103.0, 2) == pytest.approx(25.0)  # 1 s of 4
    assert steal_pct(series, 100.0, 101.5, 102.0, 2) == pytest.approx(25.0)  # part of a sample
    assert steal_pct([], 100.0, 100.0, 104.0, 2) == 0.0
