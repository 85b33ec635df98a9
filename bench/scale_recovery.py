"""The node-loss phase of `make bench-scale`: the pipeline's backlog second by second around the
kill, and when (if ever, while the load still ran) the survivor had worked off the outage."""

from __future__ import annotations

import bisect
import math
import statistics
from typing import Any

from bench.loadgen import Record
from bench.tracker import Tracker


def _cumulative(times: list[float], t: float) -> int:
    return bisect.bisect_right(times, t)


def timeline(accepted: list[float], done: list[float], kill_at: float) -> list[dict[str, Any]]:
    """Second by second (t: seconds since the kill): orders accepted and completed in that
    second, and those in the pipeline (accepted, not yet terminal). Both lists sorted."""
    if not accepted:
        return []
    first = math.floor(accepted[0])
    last = math.ceil(max(done[-1] if done else 0.0, accepted[-1]))
    rows = []
    for t in range(first, last + 1):
        a, d = _cumulative(accepted, t), _cumulative(done, t)
        rows.append(
            {
                "t": round(t - kill_at, 1),
                "accepted_per_s": a - _cumulative(accepted, t - 1),
                "completed_per_s": d - _cumulative(done, t - 1),
                "backlog": a - d,
            }
        )
    return rows


# The load's last seconds, which give the survivor's own backlog at the offered rate; a level
# is one only when, over them, the backlog moved by at most this share of its level or one
# second of orders (a cycle's batch makes it jump by tens of orders from one second to the
# next), the gateway accepted at least this share of what it did before the kill, and the
# backlog held at most this many seconds of orders (so what it moved by is at most ~6 % of the
# rate over the window).
_SETTLED_S = 20
_SETTLED_MOVE = 0.25
_SETTLED_ACCEPTED = 0.9
_SETTLED_MAX_S = 5.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def settled_level(rows: list[dict[str, Any]], load_ended_s: float) -> float | None:
    """The backlog the survivor settled at by the end of the load (the median over its last
    `_SETTLED_S` seconds), or None: too short a window, a backlog still growing or draining, a
    gateway that accepted less than before the kill (shedding load: a plateau that is not
    keeping up), or more than `_SETTLED_MAX_S` seconds of orders queued."""
    rate = _mean([r["accepted_per_s"] for r in rows if -10 <= r["t"] < 0])
    window = [r for r in rows if load_ended_s - _SETTLED_S <= r["t"] < load_ended_s]
    if len(window) < _SETTLED_S // 2 or rate <= 0:
        return None
    half = len(window) // 2
    backlog = [float(r["backlog"]) for r in window]
    moved = 2 * (_mean(backlog[half:]) - _mean(backlog[:half]))  # over the whole window
    level = float(statistics.median(backlog))
    if abs(moved) > max(_SETTLED_MOVE * level, rate):
        return None
    if _mean([r["accepted_per_s"] for r in window]) < _SETTLED_ACCEPTED * rate:
        return None
    return level if level <= _SETTLED_MAX_S * rate else None


# A backlog is down for good from the first second after which its rolling median over this many
# seconds never again exceeds the threshold (a cycle's batch makes single seconds jump).
_SMOOTH_S = 5


def _down_for_good(rows: list[dict[str, Any]], threshold: float) -> float | None:
    """The first `t` of `rows` at or below `threshold` from which the backlog stays there to
    the last row (by its rolling median over the next `_SMOOTH_S` rows: single seconds may
    jump); None when it never does."""
    backlog = [r["backlog"] for r in rows]
    start = len(rows)
    while start > 0 and statistics.median(backlog[start - 1 : start - 1 + _SMOOTH_S]) <= threshold:
        start -= 1
    return next((r["t"] for r in rows[start:] if r["backlog"] <= threshold), None)


def judge_recovery(
    rows: list[dict[str, Any]], load_ended_s: float, complete: bool
) -> dict[str, Any]:
    """When the outage's backlog was worked off for good (`backlog_back_s`, seconds since the
    kill, after the peak; from then on its rolling median stays down to the last row): back
    within its level before the kill (the largest of the 10 s before, plus a quarter or 5
    orders), or, before the load's last `_SETTLED_S` seconds began, within the level the
    survivor then settled at (`settled_level`, plus a quarter and 5; at most half
    the peak): one host has half the capacity, so its own steady backlog at the same rate may
    be above two hosts'. None when never, or when orders stayed unfinished (not `complete`).
    `recovered_s` is that moment only while the load still ran (it ended `load_ended_s` after
    the kill): a backlog that empties only once the load has stopped is a drain, not a survivor
    keeping up with the offered rate (`recovery_note` says so)."""
    before = [r["backlog"] for r in rows if -10 <= r["t"] < 0] or [0]
    after = [r for r in rows if r["t"] >= 0]
    peak = max(range(len(after)), key=lambda i: after[i]["backlog"], default=0)
    peak_backlog = after[peak]["backlog"] if after else None
    settled = settled_level(rows, load_ended_s)
    if settled is not None and peak_backlog is not None and settled > peak_backlog / 2:
        settled = None
    back = None
    if complete:
        back = _down_for_good(after[peak:], max(max(before) * 1.25, max(before) + 5))
        if settled is not None:
            down = _down_for_good(after[peak:], settled * 1.25 + 5)
            if down is not None and down < load_ended_s - _SETTLED_S:  # before its own window
                back = down if back is None else min(back, down)
    out: dict[str, Any] = {
        "recovered_s": back,
        "backlog_back_s": back,
        "load_ended_s": load_ended_s,
        "backlog_before": max(before),
        "backlog_settled": settled,
        "peak_backlog": peak_backlog,
        "peak_at_s": after[peak]["t"] if after else None,
        "recovery_note": None,
    }
    if back is None:
        out["recovery_note"] = (
            "the backlog never came back to its level before the kill, nor settled lower"
        )
    elif back > load_ended_s:
        out["recovered_s"] = None
        out["recovery_note"] = (
            f"the load ended {load_ended_s:g} s after the kill, before the backlog was back to its "
            f"level before it ({back:g} s, peak {out['peak_backlog']} at {out['peak_at_s']:g} s): "
            "the survivor did not keep up with the offered rate; what followed was a drain"
        )
    return out


def recovery(
    records: list[Record], tracker: Tracker, kill_at: float, load_end: float
) -> dict[str, Any]:
    """Orders in the pipeline second by second around the kill (`timeline`) and when they
    were back to their level before it (`judge_recovery`; the load ended at `load_end`)."""
    accepted = sorted(r[2] for r in records if r[3] == 202)
    done = sorted(o.terminal_at for o in tracker.outcomes.values())
    rows = timeline(accepted, done, kill_at)
    judged = judge_recovery(rows, round(load_end - kill_at, 1), not tracker.outstanding)
    return judged | {"timeline": rows}
