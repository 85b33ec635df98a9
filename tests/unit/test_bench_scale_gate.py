"""`make bench-scale` writes its results, then exits 1 on a loss, a ladder without a saturation
point, a node loss that did not recover while the load ran, or a failed teardown
(bench/scale.py `problems`); the teardown never masks the run's own error, and SIGTERM/SIGHUP
cancel the run so that its cleanup runs."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import bench.report
import bench.scale
from bench.scale import Interrupted, guarded, notes, problems, teardown
from bench.scale_hosts import HarnessError, Hosts
from bench.scale_phases import ScaleOptions
from tests.unit.result_docs import replaced

PHASE: dict[str, Any] = {
    "worker_hosts": 1,
    "saturation_found": True,
    "confirmed": True,
    "lost": 0,
    "confirmations": [{"offered_per_s": 200.0, "unfinished": 0}],
    "latency_run": {"lost": 0},
    "validity": None,
}
CLEAN: dict[str, Any] = {
    "timestamp": "20270101-000000",
    "runs": [copy.deepcopy(PHASE), copy.deepcopy(PHASE) | {"worker_hosts": 2}],
    "control_one_host_double_cap": copy.deepcopy(PHASE) | {"cap": 0.8},
    "node_loss": {
        "lost": 0,
        "oversold": 0,
        "charge_mismatches": 0,
        "duplicate_effects": 0,
        "recovered_s": 12.0,
        "actors_back_s": 8.0,
        "recovery_note": None,
    },
}


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """`CLEAN` with the value at `path` replaced."""
    return replaced(CLEAN, path, value)


def test_a_clean_run_has_no_problem_and_no_note() -> None:
    assert problems(CLEAN) == []
    assert notes(CLEAN) == []


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        (("node_loss", "lost"), 3, "node loss: lost 3"),
        (("node_loss", "oversold"), 1, "node loss: oversold 1"),
        (("node_loss", "charge_mismatches"), 2, "node loss: charge mismatches 2"),
        (("node_loss", "duplicate_effects"), 1, "node loss: duplicate effects 1"),
        (("node_loss", "recovered_s"), None, "node loss: not recovered"),
        (("node_loss", "actors_back_s"), None, "actors were not back"),
        (("runs", 0, "saturation_found"), False, "1 worker host(s): the ladder found no"),
        (("runs", 1, "lost"), 4, "2 worker host(s): 4 orders of the ladder unfinished"),
        (("runs", 0, "confirmations", 0, "unfinished"), 2, "hold 1 left 2 orders"),
        (("runs", 0, "latency_run", "lost"), 5, "latency run lost 5"),
        (("control_one_host_double_cap", "saturation_found"), False, "control: the ladder"),
        (("teardown_error",), "down failed", "teardown failed: down failed"),
    ],
)
def test_each_failure_is_a_problem(path: tuple[str | int, ...], value: Any, says: str) -> None:
    found = problems(_with(path, value))
    assert len(found) == 1 and says in found[0], found


def test_an_unrecovered_node_loss_says_why() -> None:
    result = _with(("node_loss", "recovered_s"), None)
    result["node_loss"]["recovery_note"] = "the load ended 39.8 s after the kill"
    assert "the load ended 39.8 s" in problems(result)[0]
    assert notes(result) == ["node loss: the load ended 39.8 s after the kill"]


def test_a_missing_node_loss_is_a_problem() -> None:
    result = copy.deepcopy(CLEAN)
    del result["node_loss"]
    assert problems(result) == ["node loss: not measured"]


def test_an_unconfirmed_rate_or_a_busy_machine_is_noted_not_failed() -> None:
    result = _with(("runs", 1, "confirmed"), False)
    result["control_one_host_double_cap"]["validity"] = "busy"
    assert problems(result) == []
    assert notes(result) == [
        "2 worker host(s): saturation not confirmed by holding it",
        "control: busy",
    ]


class _Down(Hosts):
    def __init__(self, error: Exception | None) -> None:
        super().__init__()
        self.error = error

    def down(self) -> None:
        if self.error is not None:
            raise self.error


def test_a_failing_teardown_is_kept_in_the_result_not_raised() -> None:
    result: dict[str, Any] = {}
    teardown(_Down(HarnessError("cluster/netns.sh down exited 1")), result)
    assert result == {"teardown_error": "cluster/netns.sh down exited 1"}
    clean: dict[str, Any] = {}
    teardown(_Down(None), clean)
    assert clean == {}


def test_the_runs_own_error_is_not_masked_by_the_teardown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(hosts: Hosts, opts: object, tag: str) -> dict[str, Any]:
        raise ValueError("the ladder broke")

    monkeypatch.setattr(bench.scale, "_phases", broken)
    monkeypatch.setattr(bench.scale, "Hosts", lambda **kw: _Down(HarnessError("down failed")))
    monkeypatch.setattr(bench.report, "machine", lambda: {})
    with pytest.raises(ValueError, match="the ladder broke"):
        asyncio.run(bench.scale.run(ScaleOptions()))


def _invoke(monkeypatch: pytest.MonkeyPatch, result: dict[str, Any]) -> tuple[int, str, list[str]]:
    calls: list[str] = []

    async def run(opts: object) -> dict[str, Any]:
        calls.append("run")
        return result

    monkeypatch.setattr(bench.scale, "unavailable", lambda: None)
    monkeypatch.setattr(bench.scale, "run", run)
    monkeypatch.setattr(bench.scale, "write", lambda res, out, plot: calls.append("write"))
    monkeypatch.setattr(bench.scale, "table", lambda res: calls.append("table"))
    app = typer.Typer()
    app.command()(bench.scale.main)
    got = CliRunner().invoke(app, ["--out", str(Path("unused"))])
    return got.exit_code, got.output, calls


def test_bench_scale_exits_1_after_writing_on_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, calls = _invoke(monkeypatch, _with(("node_loss", "lost"), 2))
    assert calls == ["run", "write", "table"]  # the results are written first
    assert code == 1, output
    assert "FAILED" in output and "node loss: lost 2" in output


def test_bench_scale_exits_0_when_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, calls = _invoke(monkeypatch, CLEAN)
    assert (code, calls) == (0, ["run", "write", "table"]), output


def test_a_signal_cancels_the_run_so_that_its_cleanup_runs() -> None:
    cleaned: list[str] = []

    async def work() -> str:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append("down")
        return "not reached"

    async def go() -> str:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
        return await guarded(work(), (signal.SIGUSR1,))

    with pytest.raises(Interrupted) as stopped:
        asyncio.run(go())
    assert stopped.value.signum == signal.SIGUSR1 and cleaned == ["down"]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the handler is gone again


def test_without_a_signal_the_result_comes_back() -> None:
    async def work() -> int:
        return 7

    async def go() -> int:
        return await guarded(work(), (signal.SIGUSR1,))

    assert asyncio.run(go()) == 7
