"""A tracked run the gateway refused (every request a 429 or 503): no latency was measured, so
none is reported (None in the JSON, "n/a" in the table, no point in the plots), and the run
fails (bench/gate.py) rather than pass with accept p99 0.0 ms and nothing lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bench import mainrun, plot, report
from bench.gate import MIN_ACCEPTED_SHARE, problems
from bench.loadgen import Record
from bench.loadpoints import point
from bench.mainrun import Load, MainRun
from bench.stats import latency_summary, pct, series
from bench.tracker import Tracker
from bench.ui import console
from bench.workload import Mix
from tests.unit.result_docs import replaced

LOAD = Load("http://127.0.0.1:1", 10, 10.0, 0, 1, Mix(), 1, 0.0, 0.0, 1000.0)


def _refused_run(n: int = 100) -> MainRun:
    t0 = time.time()
    records: list[Record] = [
        (t0 + i / 10, t0 + i / 10, t0 + i / 10 + 0.002, 503, "busy") for i in range(n)
    ]
    return MainRun(LOAD, t0=t0, load_end=t0 + 10, records=records)


def _figures() -> dict[str, Any]:
    return mainrun.summary(_refused_run(), Tracker("unused"))


def test_no_value_has_no_percentile() -> None:
    assert pct([], 99) is None
    assert latency_summary([]) == {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    assert pct([3.0, 1.0, 2.0], 50) == 2.0


def test_a_run_that_accepted_nothing_has_no_latency_and_fails() -> None:
    figures = _figures()
    assert (figures["offered"], figures["accepted"], figures["lost"]) == (100, 0, 0)
    for key in ("p50_accept_ms", "p99_accept_ms", "service_p99_ms", "p50_e2e_ms", "p99_e2e_ms"):
        assert figures[key] is None, key
    assert problems(figures) == ["main run: no order accepted (100 offered)"]


CLEAN: dict[str, Any] = {
    "offered": 1000,
    "accepted": 990,
    "warmup_run": {"offered": 500, "accepted": 500},
    "latency_by_load": [{"load_fraction": 0.25, "offered": 100, "accepted": 100}],
}


@pytest.mark.parametrize(
    ("path", "accepted", "says"),
    [
        (("accepted",), 0, "main run: no order accepted (1000 offered)"),
        (("accepted",), 499, "main run: 499 of 1000 orders accepted (< 50% of offered)"),
        (("warmup_run", "accepted"), 0, "warm-up run: no order accepted (500 offered)"),
        (("latency_by_load", 0, "accepted"), 10, "load point 25%: 10 of 100 orders accepted"),
    ],
)
def test_a_run_that_accepted_less_than_half_fails(
    path: tuple[str | int, ...], accepted: int, says: str
) -> None:
    assert problems(CLEAN) == []
    found = problems(replaced(CLEAN, path, accepted))
    assert len(found) == 1 and found[0].startswith(says), found


def test_half_accepted_passes() -> None:
    assert MIN_ACCEPTED_SHARE == 0.5
    assert problems(replaced(CLEAN, ("accepted",), 500)) == []


def test_a_load_point_that_accepted_nothing_says_so_and_fails() -> None:
    entry = point(0.5, _figures())
    assert (entry["accept_p50_ms"], entry["e2e_shipped_p99_ms"]) == (None, None)
    assert (entry["offered"], entry["accepted"], entry["accepted_per_s"]) == (100, 0, 0.0)
    assert problems({"latency_by_load": [entry]}) == [
        "load point 50%: no order accepted (100 offered)"
    ]


def _result() -> dict[str, Any]:
    """A whole result whose main run, warm-up and load point accepted nothing."""
    figures = _figures()
    run = _refused_run()
    return figures | {
        "timestamp": "20261207-120000",
        "machine": {"cpus": 2, "cpu_model": "test"},
        "settings": {"load": {"rate": 10.0, "concurrency": 0, "duration_s": 10}},
        "series": series(run.records, [], run.t0, [(run.t0 + 1, {"gateway": 0.5})]),
        "stock": {"invariantViolations": 0, "storedWithout202": 0},
        "oversold": 0,
        "warmup_run": {k: figures[k] for k in ("accepted_per_s", "p50_accept_ms", "p99_accept_ms")}
        | {"lost": 0, "duration_s": 10},
        "generator": {"serve /health loadgen": {"rps": 0.0, "p99_ms": None}},
        "serve_vs_uvicorn_ratio": None,
        "saturation": {"found": False, "at_offered_per_s": None, "steps": [], "unfinished": 0},
        "saturation_completed_per_s": 0.0,
        "latency_by_load": [point(0.5, figures)],
    }


def test_the_table_prints_n_a_where_nothing_was_measured() -> None:
    with console.capture() as captured:
        report.table(_result())
    text = captured.get()
    assert "n/a / n/a / n/a" in text  # accept and accept→SHIPPED p50 / p95 / p99
    assert "None" not in text.replace("n/a", "")
    assert "n/a, n/a / n/a, n/a" in text  # the load point's latencies


def test_the_plots_leave_out_what_was_not_measured(tmp_path: Path) -> None:
    result = _result()
    assert all(row["accept_p99_ms"] is None for row in result["series"])
    plot.draw(result, tmp_path / "run.png")
    assert plot.draw_load(result, tmp_path / "load.png")
    assert (tmp_path / "run.png").is_file() and (tmp_path / "load.png").is_file()
