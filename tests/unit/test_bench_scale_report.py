"""The figures of `make bench-scale` (bench/scale_report.py, bench/scale_recovery.py,
bench/scale_phases.py): a node loss
counts as recovered only when its backlog came back while the load still ran, its lost orders
include those stored without a 202, a phase's rate is confirmed by holding it, a busy machine
is noted; and the harness's RUN_DIR is refused when someone else may have made it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bench.checks
import bench.hold
import bench.scale_phases
from bench.saturation import Plan
from bench.scale_hosts import run_dir_refused
from bench.scale_phases import ScaleOptions
from bench.scale_plot import step_seconds
from bench.scale_recovery import judge_recovery, timeline
from bench.scale_report import busy_mean, busy_note, loss_counts


def _rows(backlogs: list[tuple[float, int]]) -> list[dict[str, Any]]:
    return [{"t": t, "accepted_per_s": 0, "completed_per_s": 0, "backlog": b} for t, b in backlogs]


# shaped like the committed run 20261203-232849: ~150/s offered, w2 killed at 0, the backlog
# peaks at 5,128 (36.1 s), the load ends 39.8 s after the kill, the backlog is 0 at 49.1 s
DRAINED_AFTER_THE_LOAD = _rows(
    [(-8.9, 219), (-7.9, 245), (-0.9, 132), (0.1, 142), (20.1, 3129), (36.1, 5128)]
    + [(40.1, 4829), (44.1, 2988), (48.1, 1346), (49.1, 0)]
)


def test_a_backlog_that_empties_only_after_the_load_is_not_a_recovery() -> None:
    got = judge_recovery(DRAINED_AFTER_THE_LOAD, load_ended_s=39.8, complete=True)
    assert got["recovered_s"] is None
    assert got["backlog_back_s"] == 49.1
    assert (got["peak_backlog"], got["peak_at_s"], got["backlog_before"]) == (5128, 36.1, 245)
    assert "the load ended 39.8 s after the kill" in got["recovery_note"]
    assert "did not keep up" in got["recovery_note"]


def test_a_backlog_back_while_the_load_runs_is_a_recovery() -> None:
    rows = _rows([(-5.0, 100), (0.0, 100), (10.0, 900), (20.0, 120), (30.0, 90)])
    got = judge_recovery(rows, load_ended_s=40.0, complete=True)
    assert (got["recovered_s"], got["recovery_note"]) == (20.0, None)


def test_orders_left_unfinished_are_no_recovery() -> None:
    rows = _rows([(-5.0, 100), (0.0, 100), (10.0, 900), (20.0, 120)])
    got = judge_recovery(rows, load_ended_s=40.0, complete=False)
    assert got["recovered_s"] is None and got["backlog_back_s"] is None
    assert "never came back" in got["recovery_note"]


def test_the_timeline_counts_each_second_around_the_kill() -> None:
    rows = timeline([10.2, 10.5, 11.1], [10.9, 12.4], kill_at=11.0)
    assert [(r["t"], r["backlog"]) for r in rows] == [(-1.0, 0), (0.0, 1), (1.0, 2), (2.0, 1)]
    assert timeline([], [], 0.0) == []


def test_orders_stored_without_a_202_count_as_lost() -> None:
    verdict = {
        "accepted": 100,
        "lost": 1,
        "oversold": 0,
        "charge_mismatches": 0,
        "duplicate_effects": 0,
    }
    got = loss_counts(verdict, {"lost": 3, "stored_without_202": 2})
    assert (got["lost"], got["lost_tracked"], got["stored_without_202"]) == (3, 1, 2)
    assert loss_counts(verdict, {"lost": 0, "stored_without_202": 0})["lost"] == 1


def test_busy_cores_are_averaged_over_the_window_and_noted_from_90_percent() -> None:
    box = [(1.0, {"box": 1.0}), (2.0, {"box": 1.9}), (3.0, {"box": 2.0}), (9.0, {"box": 0.1})]
    assert busy_mean(box, 2.0, 3.0) == 1.95
    assert busy_mean(box, 4.0, 5.0) is None
    assert busy_note({"holds": 1.7, "step": None}, cpus=2) is None
    note = busy_note({"holds": 1.8, "saturation step": 1.2}, cpus=2)
    assert note is not None and "holds: 1.8" in note and "saturation step" not in note


def test_the_plot_labels_the_runs_own_step_length() -> None:
    assert step_seconds({"settings": {"options": {"plan": {"step_s": 10}}}}) == "10"
    assert step_seconds({}) == "?"


def test_a_run_dir_of_someone_else_or_open_to_others_is_refused(tmp_path: Path) -> None:
    assert run_dir_refused(tmp_path / "absent") is None
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert run_dir_refused(mine) is None
    os.chmod(mine, 0o777)
    assert "mode 0777" in (run_dir_refused(mine) or "")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert "symlink" in (run_dir_refused(link) or "")
    (tmp_path / "file").write_text("")
    assert "not a directory" in (run_dir_refused(tmp_path / "file") or "")


def _hosts() -> Any:
    settings = SimpleNamespace(jwt_secret="x")
    return SimpleNamespace(gateway="http://gw", dsn="dsn", platform_settings=lambda: settings)


def test_each_phase_holds_the_rate_its_ladder_found(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float]] = []

    async def settle(base: str) -> float:
        calls.append(("settle", 0.0))
        return 0.0

    async def confirm(load: Any, plan: Plan, people_for: Any, prefix: str, *rest: Any) -> Any:
        found = rest[-1]
        calls.append((prefix, found["completed_per_s"]))
        return found | {"completed_per_s": 180.0, "confirmed": True}

    monkeypatch.setattr(bench.checks, "settle", settle)
    monkeypatch.setattr(bench.hold, "confirm", confirm)
    found = {"completed_per_s": 200.0, "at_offered_per_s": 215.0}
    opts = ScaleOptions()
    confirm_ = bench.scale_phases._confirm
    got = asyncio.run(confirm_(_hosts(), opts, "t-1", object(), object(), found))  # type: ignore[arg-type]
    assert got["completed_per_s"] == 180.0 and calls == [("settle", 0.0), ("t-1-c", 200.0)]
    calls.clear()
    off = ScaleOptions(plan=Plan(confirm_s=0))
    assert asyncio.run(confirm_(_hosts(), off, "t", object(), object(), found)) is found  # type: ignore[arg-type]
    none = found | {"completed_per_s": 0.0}
    assert asyncio.run(confirm_(_hosts(), opts, "t", object(), object(), none)) is none  # type: ignore[arg-type]
    assert calls == []


def _settling(
    level: int, drift: int = 0, accepted: int = 87, window: int = 40
) -> list[dict[str, Any]]:
    """87 accepted/s; kill at 0 (84 before), peak 2,800 at 34 s, then `level` (moving by `drift`
    over the next `window` s) from 60 s until the load ends at 100 s."""
    rows = [(-10.0 + i, 84, 87) for i in range(10)] + [(0.0, 90, 87), (34.0, 2800, 87)]
    rows += [(50.0, 900, 87)] + [
        (60.0 + i, level + drift * i // window, accepted) for i in range(40)
    ]
    return [{"t": t, "accepted_per_s": a, "completed_per_s": 0, "backlog": b} for t, b, a in rows]


def test_a_survivor_that_settles_higher_than_two_hosts_has_recovered() -> None:
    """One host has half the capacity: at the same rate its own steady backlog (150) is above
    two hosts' (84), yet the outage's 2,800 were worked off at 60 s, while loaded."""
    got = judge_recovery(_settling(150), load_ended_s=100.0, complete=True)
    assert (got["recovered_s"], got["backlog_settled"], got["recovery_note"]) == (60.0, 150, None)


def test_a_backlog_still_draining_at_the_end_of_the_load_gives_no_level() -> None:
    got = judge_recovery(_settling(600, drift=-400), load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] is None
    assert got["recovered_s"] is None and "never came back" in got["recovery_note"]


def test_a_backlog_still_growing_is_no_recovery() -> None:
    got = judge_recovery(_settling(200, drift=300), load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] is None and got["recovered_s"] is None


def test_a_slow_growth_past_the_peak_is_no_recovery() -> None:
    """Growing 20/s from the peak on: it moves less than a quarter of its level over the
    window, but 3,400 queued is 39 s of orders (and more than half the peak): no level."""
    rows = _settling(2800, drift=800)  # 2,800 → 3,600 over 40 s
    got = judge_recovery(rows, load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] is None and got["recovered_s"] is None


def test_a_plateau_while_the_gateway_sheds_load_is_no_level() -> None:
    got = judge_recovery(_settling(300, accepted=40), load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] is None and got["recovered_s"] is None


def test_a_flat_backlog_of_many_seconds_of_orders_is_no_level() -> None:
    """1,000 queued at 87/s is 11 s of orders: flat, yet not a survivor keeping up."""
    got = judge_recovery(_settling(1000), load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] is None and got["recovered_s"] is None


def test_a_level_reached_only_inside_its_own_window_does_not_count() -> None:
    """400 queued until 80 s, 200 at 80 s, then 150: flat over the last 20 s, but the backlog
    came down to that level only inside them, which proves nothing about keeping up."""
    rows = _settling(150)
    for r in rows:
        if 60 <= r["t"] < 80:
            r["backlog"] = 400
        elif r["t"] == 80:
            r["backlog"] = 200
    got = judge_recovery(rows, load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] == 150
    assert got["recovered_s"] is None and "never came back" in got["recovery_note"]


def test_a_noisy_level_is_still_a_level() -> None:
    """The 20261206-143303 run's last 20 s at 51/s: one host's batches make the backlog jump
    by tens of orders a second around ~110 (before the kill, two hosts held ~56)."""
    noisy = [90, 113, 137, 123, 109, 125, 114, 138, 99, 118, 126, 122, 124, 130, 96, 74, 74]
    noisy += [104, 95, 73]
    rows = [(-10.0 + i, 56, 51) for i in range(10)] + [(0.0, 52, 51), (44.0, 2095, 50)]
    rows += [(48.0, 187, 51), (52.0, 124, 51)] + [(60.0 + i, 110, 51) for i in range(20)]
    rows += [(80.0 + i, b, 51) for i, b in enumerate(noisy)]
    timeline = [
        {"t": t, "accepted_per_s": a, "completed_per_s": 0, "backlog": b} for t, b, a in rows
    ]
    got = judge_recovery(timeline, load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] == 113.5
    assert (got["recovered_s"], got["recovery_note"]) == (52.0, None)


def test_a_level_above_half_the_peak_is_no_level() -> None:
    """A flat 400 after a peak of only 600: the outage's excess was never worked off."""
    rows = _settling(400)
    for r in rows:
        if r["t"] == 34.0:
            r["backlog"] = 600
        elif r["t"] == 50.0:
            r["backlog"] = 500
    got = judge_recovery(rows, load_ended_s=100.0, complete=True)
    assert got["backlog_settled"] is None and got["recovered_s"] is None


def test_a_dip_that_does_not_last_is_no_recovery() -> None:
    """Back to the level before the kill for a few seconds at 40 s, then 1,500 queued to the
    end of the load: the dip is not a recovery (the first version took it for one)."""
    rows = _settling(1500)
    for r in rows:
        if r["t"] == 50.0:
            r["backlog"] = 84
    rows += [{"t": t, "accepted_per_s": 0, "completed_per_s": 0, "backlog": 0} for t in (120.0,)]
    got = judge_recovery(rows, load_ended_s=100.0, complete=True)
    assert got["recovered_s"] is None and got["backlog_back_s"] == 120.0


def test_spikes_of_single_seconds_do_not_undo_a_recovery() -> None:
    rows = _settling(150)
    for r in rows:
        if r["t"] in (70.0, 90.0):
            r["backlog"] = 400  # one cycle's batch
    got = judge_recovery(rows, load_ended_s=100.0, complete=True)
    assert got["recovered_s"] == 60.0
