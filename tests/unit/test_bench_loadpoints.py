"""Latency by load entries, the capacity ratio, the load-fraction option and the ladder's
schedule in the load generator."""

from __future__ import annotations

import pytest
import typer

from bench.cli import parse_fractions
from bench.loadgen import WorkerSpec, segments
from bench.loadpoints import capacity_ratios, point

FIGURES = {
    "offered_per_s": 200.0,
    "completed_per_s": 199.5,
    "p50_accept_ms": 4.0,
    "p99_accept_ms": 31.0,
    "p50_e2e_ms": 120.0,
    "p99_e2e_ms": 240.0,
    "lost": 0,
    "errors": {},
    "cpu_ms_per_order": {"postgres": 1.0},
}


def test_point_names_the_figures_of_one_load_point() -> None:
    got = point(0.5, FIGURES)
    assert got["load_fraction"] == 0.5
    assert (got["accept_p50_ms"], got["accept_p99_ms"]) == (4.0, 31.0)
    assert (got["e2e_shipped_p50_ms"], got["e2e_shipped_p99_ms"]) == (120.0, 240.0)
    assert (got["offered_per_s"], got["completed_per_s"], got["lost"]) == (200.0, 199.5, 0)


def test_capacity_ratio() -> None:
    result = {"saturation_completed_per_s": 400.0, "capacity": {"serve": {"ok_rps": 800.0}}}
    assert capacity_ratios(result) == {
        "gateway_accept_capacity_per_s": 800.0,
        "saturation_vs_accept_capacity": 0.5,
    }
    none = capacity_ratios({"saturation_completed_per_s": None, "capacity": {}})
    assert none == {"gateway_accept_capacity_per_s": None, "saturation_vs_accept_capacity": None}


def test_parse_fractions() -> None:
    assert parse_fractions("0.25, 0.5,0.9") == (0.25, 0.5, 0.9)
    assert parse_fractions("0") == ()
    assert parse_fractions("") == ()
    for bad in ("half", "2"):
        with pytest.raises(typer.BadParameter):
            parse_fractions(bad)


def test_a_ladder_is_back_to_back_open_loop_segments() -> None:
    spec = WorkerSpec(
        index=1,
        base_url="",
        path="/api/orders",
        start_at=1000.0,
        duration_s=15.0,
        rate=50.0,
        offset_s=1 / 100,
        steps=(50.0, 80.0),
    )
    assert segments(spec) == [(1000.0, 15.0, 50.0), (1015.0, 15.0, 80.0)]
    plain = WorkerSpec(index=0, base_url="", path="/", start_at=5.0, duration_s=10.0, rate=3.0)
    assert segments(plain) == [(5.0, 10.0, 3.0)]
    closed = WorkerSpec(index=0, base_url="", path="/", start_at=5.0, duration_s=10.0)
    assert segments(closed) == []
