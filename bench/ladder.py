"""The arithmetic of the step phase (pure): the offered rates of the ladder, one step's figures
from the Postgres samples taken while it ran, and whether the pipeline still keeps up.

A step keeps up when the gateway accepts what is offered, completed/s follows the offered rate
and the backlog (orders accepted but not yet terminal) does not grow. The ladder stops after
`Rule.confirm` steps in a row that do not keep up (one miss may be a neighbour's burst on a
shared box). The saturation point is the highest completed/s of any step, each step counted at
most at its offered rate and at the rate it accepted: once the offered rate is above what the
pipeline can do, completed/s is what it can do; but a step that also works off an earlier
step's backlog completes more than it takes in, which the platform has not shown it can
sustain. (A run of 2026-12-04 had a step offered 608/s accept 454/s and complete 512/s while
its backlog fell by 100/s; counted at its offered rate it made "saturation" 512/s, and the 90 %
load point at 461/s fell behind by 50/s.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """Cumulative counts of the phase's orders at wall-clock time `t`."""

    t: float
    accepted: int  # orders stored (each answered 202, or stored after its client gave up)
    done: int  # of those, orders in a terminal status

    @property
    def backlog(self) -> int:
        return self.accepted - self.done


@dataclass(frozen=True)
class Step:
    """One rung of the ladder, measured over its settled window."""

    offered_per_s: float
    accepted_per_s: float
    completed_per_s: float
    backlog_start: int
    backlog_end: int
    backlog_growth_per_s: float  # least-squares slope of the backlog over the window
    window_s: float
    t_from: float = 0.0  # wall-clock start of the window (its first sample)

    def as_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["t_from"]
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in fields.items()}


@dataclass(frozen=True)
class Rule:
    """When a step counts as keeping up (shares of its offered rate)."""

    min_accepted: float = 0.95  # accepted/s at least this share of offered/s
    min_completed: float = 0.90  # completed/s at least this share (batches make it lumpy)
    max_growth: float = 0.10  # backlog growing by at most this share of offered/s per second
    confirm: int = 2  # consecutive misses that end the ladder


@dataclass(frozen=True)
class Verdict:
    saturated: bool  # the ladder found the point (else it ran out of steps)
    completed_per_s: float  # the highest completed/s of any step, at most its offered and
    # its accepted rate
    at_step: int | None  # index of that step
    misses: int  # steps that did not keep up


def rates(start: float, inc: float, max_rate: float, growth: float = 0.0) -> list[float]:
    """The offered rates of the ladder from `start` up to `max_rate`, each step adding `inc` or
    `growth` times the current rate, whichever is more (fewer steps to a high saturation point;
    the point itself is measured as completed/s, not read off the grid)."""
    if start <= 0 or inc <= 0 or growth < 0:
        raise ValueError("the ladder needs start > 0, inc > 0 and growth >= 0")
    out: list[float] = []
    rate = start
    while rate <= max_rate + 1e-9:
        out.append(round(rate, 1))
        rate += max(inc, growth * rate)
    return out


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    if var <= 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / var


def measure(samples: Sequence[Sample], start: float, end: float, offered: float) -> Step | None:
    """The step whose settled window is [start, end], from the samples inside it (None with
    fewer than two of them)."""
    inside = [s for s in samples if start <= s.t <= end]
    if len(inside) < 2 or inside[-1].t <= inside[0].t:
        return None
    first, last = inside[0], inside[-1]
    span = last.t - first.t
    return Step(
        offered_per_s=offered,
        accepted_per_s=(last.accepted - first.accepted) / span,
        completed_per_s=(last.done - first.done) / span,
        backlog_start=first.backlog,
        backlog_end=last.backlog,
        backlog_growth_per_s=slope([(s.t - first.t, float(s.backlog)) for s in inside]),
        window_s=span,
        t_from=first.t,
    )


def misses(step: Step, rule: Rule) -> list[str]:
    """Why `step` does not keep up (empty: it does)."""
    why: list[str] = []
    offered = step.offered_per_s
    if step.accepted_per_s < rule.min_accepted * offered:
        why.append(f"accepted {step.accepted_per_s:.0f}/s < {rule.min_accepted:.0%} of offered")
    if step.completed_per_s < rule.min_completed * offered:
        why.append(f"completed {step.completed_per_s:.0f}/s < {rule.min_completed:.0%} of offered")
    if step.backlog_growth_per_s > rule.max_growth * offered:
        why.append(f"backlog growing {step.backlog_growth_per_s:.0f}/s")
    return why


def held_or_lower(step: Step, rule: Rule, backoff: float = 0.95) -> float | None:
    """After holding a rate for a while (the confirmation of the point the ladder found): None
    when `step` kept up, else the rate to hold next, `backoff` below what it sustained (its
    completed and its accepted rate, whichever is less). A ladder's step lasts seconds, and a
    pipeline that batches can complete more than it sustains for that long (a run of 2026-12-06
    found 922/s in a 10 s window, and its 90 % point, 830/s for 20 s, completed 717/s)."""
    if not misses(step, rule):
        return None
    return round(backoff * min(step.completed_per_s, step.accepted_per_s, step.offered_per_s), 1)


def judge(steps: Sequence[Step], rule: Rule) -> Verdict:
    """Has the ladder found saturation (`rule.confirm` misses in a row), and where is it."""
    run = missed = 0
    for step in steps:
        if misses(step, rule):
            run, missed = run + 1, missed + 1
        else:
            run = 0
    if not steps:
        return Verdict(False, 0.0, None, 0)
    sustained = [min(s.completed_per_s, s.offered_per_s, s.accepted_per_s) for s in steps]
    best = max(range(len(steps)), key=lambda i: sustained[i])
    return Verdict(run >= rule.confirm, sustained[best], best, missed)
