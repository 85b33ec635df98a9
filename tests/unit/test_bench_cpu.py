"""CPU milliseconds per completed order (bench.cpu) and where the report takes them from."""

from __future__ import annotations

import uuid

import pytest

from bench.cpu import ms_per_order, seconds_in, window_ms_per_order
from bench.mainrun import Load, MainRun, summary
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
    got = summary(run, tracker)["cpu_ms_per_order"]
    assert got["postgres"] == pytest.approx(0.5 * 8 * 1000 / 800)
    assert got["actor:payment"] == pytest.approx(0.25 * 8 * 1000 / 800)


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
    fake = type("PS", (), {"process_iter": staticmethod(lambda attrs: next(scans))})()
    monkeypatch.setattr(procs, "psutil_module", lambda: fake)
    sampler = procs.CpuSampler()
    sampler.start()
    sampler.sample()
    sampler.sample()
    assert sampler.totals == {
        "ray-system": pytest.approx(0.5),
        "actor:shipping": pytest.approx(1.5),
        "actor:payment": pytest.approx(2.0),
    }
