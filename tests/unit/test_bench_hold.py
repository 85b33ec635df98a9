"""The confirmation of the saturation point (bench/hold.py): each hold's drain is recorded, the
rate reported is one that was held, and the table says when no hold kept up."""

from __future__ import annotations

from typing import Any

import pytest

from bench import hold, report
from bench.ladder import Step
from bench.mainrun import Load
from bench.procs import CpuSampler
from bench.saturation import Climb, Plan
from bench.workload import Customer, Mix

LOAD = Load("http://127.0.0.1:1", 1, 10.0, 0, 1, Mix(), 1, 0.0, 0.0, 1000.0)


def _offering(completed_share: float, unfinished: int) -> Any:
    """A fake `saturation.offer`: each hold completes `completed_share` of its rate."""

    async def offer(
        load: Load, plan: Plan, people: list[Customer], prefix: str, *args: Any, **kw: Any
    ) -> tuple[Climb, dict[str, Any]]:
        rate = args[2][0]  # (dsn, cpu, rates)
        step = Step(rate, rate, completed_share * rate, 0, 0, 0.0, 10.0, 1.0)
        drained = {"accepted": 100, "unfinished": unfinished, "drain_s": 1.5}
        return Climb([rate], steps=[step]), drained

    return offer


async def _confirm(monkeypatch: pytest.MonkeyPatch, share: float, left: int) -> dict[str, Any]:
    monkeypatch.setattr(hold, "offer", _offering(share, left))
    found = {"completed_per_s": 500.0, "at_offered_per_s": 520.0, "steps": [], "found": True}
    found["cpu_ms_per_order"] = {"platform": -1.0}  # the ladder step's, to be replaced
    return await hold.confirm(
        LOAD, Plan(confirm_s=10), lambda i: [], "p", "dsn", CpuSampler(), found
    )


async def test_the_rate_reported_is_the_last_one_held(monkeypatch: pytest.MonkeyPatch) -> None:
    found = await _confirm(monkeypatch, 0.8, 0)  # no hold keeps up (completed < 90 %)
    held = [h["offered_per_s"] for h in found["confirmations"]]
    assert held == [500.0, 380.0, 288.8]  # each 95 % of what the one before completed
    assert found["at_offered_per_s"] == 288.8  # not 219.5, the next rate, never held
    assert found["completed_per_s"] == 231.0 and found["confirmed"] is False
    assert (found["ladder_completed_per_s"], found["ladder_offered_per_s"]) == (500.0, 520.0)
    # the CPU figures are the last hold's too, not the ladder step's at 520/s
    assert found["cpu_ms_per_order"] == found["confirmations"][-1]["cpu_ms_per_order"]


async def test_each_hold_records_its_unfinished_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    found = await _confirm(monkeypatch, 1.0, 3)
    assert found["confirmed"] is True and found["at_offered_per_s"] == 500.0
    (only,) = found["confirmations"]
    assert (only["unfinished"], only["accepted"], only["drain_s"]) == (3, 100, 1.5)


def test_the_table_marks_an_unconfirmed_saturation() -> None:
    found = {
        "found": True,
        "at_offered_per_s": 288.8,
        "steps": [],
        "unfinished": 0,
        "confirmed": False,
        "ladder_completed_per_s": 500.0,
        "confirmations": [{"offered_per_s": 500.0, "completed_per_s": 400.0, "unfinished": 2}],
    }
    rows = report._saturation_rows({"saturation": found, "saturation_completed_per_s": 231.0})
    name, value = rows[0]
    assert "NOT CONFIRMED" in name and "231.0" in value
    holds = dict(rows)["saturation held ([bold yellow]not confirmed[/])"]
    assert "500.0/s → 400.0/s (2 unfinished)" in holds
