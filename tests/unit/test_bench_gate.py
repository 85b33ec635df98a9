"""`make bench` writes its results, then exits 1 when an order was lost or left unfinished (also
by the accept-capacity phase), a unit oversold or a stock invariant broken (also at the end of
the whole run) (bench/gate.py, bench/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bench.cli
from bench.gate import problems
from core.settings import Settings
from tests.unit.result_docs import replaced

CLEAN: dict[str, Any] = {
    "lost": 0,
    "oversold": 0,
    "oversold_all_phases": 0,
    "stock_all_phases": {"oversoldBySku": {}},
    "stock": {"invariantViolations": 0, "storedWithout202": 3},
    "warmup_run": {"lost": 0},
    "saturation": {"unfinished": 0, "confirmations": [{"offered_per_s": 500.0, "unfinished": 0}]},
    "latency_by_load": [{"load_fraction": 0.5, "lost": 0}],
    "capacity": {
        "serve": {
            "drain_by_connections": {
                32: {"orders": 9, "unfinished": 0, "answered_202": 9, "not_stored": 0},
                64: {"orders": 9},
            }
        }
    },
    "end_audit": {
        "broken_stock": 0,
        "held_when_finished": 0,
        "holds_out_of_step": 0,
        "unfinished": 0,
    },
}


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """`CLEAN` with the value at `path` replaced."""
    return replaced(CLEAN, path, value)


def test_a_clean_result_has_no_problem() -> None:
    assert problems(CLEAN) == []
    assert problems({"lost": 0, "oversold": 0, "stock": {"invariantViolations": 0}}) == []


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (("lost",), "main run: 2 orders lost"),
        (("oversold",), "2 units oversold"),
        (("stock", "invariantViolations"), "2 stock rows"),
        (("warmup_run", "lost"), "warm-up run: 2"),
        (("saturation", "unfinished"), "step phase: 2 orders unfinished"),
        (("saturation", "confirmations", 0, "unfinished"), "hold 1 (500.0/s): 2 unfinished"),
        (("saturation", "not_stored"), "step phase: 2 orders answered 202 and not stored"),
        (
            ("saturation", "confirmations", 0, "not_stored"),
            "hold 1 (500.0/s): 2 answered 202 and not stored",
        ),
        (("latency_by_load", 0, "lost"), "load point 50%: 2 orders lost"),
        (
            ("capacity", "serve", "drain_by_connections", 64, "unfinished"),
            "accept capacity serve (64 connections): 2 of 9 orders unfinished",
        ),
        (("end_audit", "broken_stock"), "end of run: 2 SKUs' stock bookkeeping broken"),
        (("end_audit", "held_when_finished"), "end of run: 2 holds left on finished orders"),
        (("end_audit", "holds_out_of_step"), "end of run: 2 reservations disagree"),
        (("oversold_all_phases",), "whole run: 2 units oversold (every phase)"),
        (("end_audit", "unfinished"), "end of run: 2 orders of the run not terminal"),
        (
            ("capacity", "serve", "drain_by_connections", 32, "not_stored"),
            "accept capacity serve (32 connections): 2 orders answered 202 and not stored",
        ),
    ],
)
def test_each_loss_is_a_problem(path: tuple[str | int, ...], says: str) -> None:
    found = problems(_with(path, 2))
    assert len(found) == 1 and says in found[0], found


def _invoke(monkeypatch: pytest.MonkeyPatch, result: dict[str, Any]) -> tuple[int, str, list[str]]:
    calls: list[str] = []

    async def run(opts: object, settings: object) -> dict[str, Any]:
        calls.append("run")
        return result

    monkeypatch.setattr(bench.cli, "get_settings", lambda: Settings(http_port=8080))
    monkeypatch.setattr(bench.cli, "run", run)
    monkeypatch.setattr(bench.cli, "_write", lambda res, out: calls.append("write"))
    got = CliRunner().invoke(bench.cli.app, ["--out", str(Path("unused"))])
    return got.exit_code, got.output, calls


def test_bench_exits_1_after_writing_when_orders_are_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, output, calls = _invoke(monkeypatch, _with(("latency_by_load", 0, "lost"), 4))
    assert calls == ["run", "write"]  # the results are written first
    assert code == 1, output
    assert "FAILED" in output and "load point 50%: 4 orders lost" in output


def test_bench_exits_0_when_nothing_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, calls = _invoke(monkeypatch, CLEAN)
    assert (code, calls) == (0, ["run", "write"]), output
    assert "FAILED" not in output
