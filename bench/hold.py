"""The confirmation of the step phase's point: the rate the ladder found, held for
`Plan.confirm_s` and lowered while the pipeline does not keep up with it (`bench.ladder.
held_or_lower`). A ladder step lasts seconds; what a pipeline that batches completes that long
is not always what it sustains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench import ladder
from bench.cpu import window_ms_per_order
from bench.mainrun import Load
from bench.procs import CpuSampler
from bench.saturation import Plan, offer
from bench.ui import info
from bench.workload import Customer


async def confirm(
    load: Load,
    plan: Plan,
    people_for: Callable[[int], list[Customer]],
    prefix: str,
    dsn: str,
    cpu: CpuSampler,
    found: dict[str, Any],
) -> dict[str, Any]:
    """Hold the rate the ladder found for `plan.confirm_s`; when the pipeline does not keep up
    with it, hold a lower one (`ladder.held_or_lower`), at most `plan.confirm_tries` times.
    `found` gets what the last hold measured sustained as `completed_per_s` and its rate as
    `at_offered_per_s` (none measured: the ladder's), the ladder's as `ladder_completed_per_s`
    and `ladder_offered_per_s`, `confirmed`, and each hold's figures and drain (`accepted`,
    `unfinished`, `drain_s` as the step phase's) as `confirmations`."""
    rate = float(found["completed_per_s"])
    held: list[dict[str, Any]] = []
    confirmed, sustained, at = False, rate, found.get("at_offered_per_s")
    held_plan = replace(plan, step_s=plan.confirm_s)  # one rate, measured as a ladder step
    for i in range(plan.confirm_tries):
        people, tag = people_for(i), f"{prefix}{i}"
        climb, drained = await offer(
            load, held_plan, people, tag, dsn, cpu, [rate], label="hold", first=i + 1
        )
        if not climb.steps:
            held.append({"offered_per_s": rate, "measured": False, **drained})
            info(
                f"[yellow]held {rate:g}/s: no window measured ({drained['unfinished']} unfinished)"
            )
            break
        step = climb.steps[0]
        entry = _measured(step, plan, cpu, drained)
        held.append(entry)
        sustained = min(step.completed_per_s, step.accepted_per_s, step.offered_per_s)
        at = step.offered_per_s  # the rate of the last hold measured
        nxt = ladder.held_or_lower(step, plan.rule)
        info(
            f"held {rate:g}/s for {plan.confirm_s}s: accepted {step.accepted_per_s:.1f}/s "
            f"completed {step.completed_per_s:.1f}/s, {drained['unfinished']} unfinished — "
            + ("keeps up" if nxt is None else f"{'; '.join(entry['misses'])}: next {nxt:g}/s")
        )
        found["cpu_ms_per_order"] = entry["cpu_ms_per_order"]  # the rate reported's, kept up or not
        if nxt is None:
            confirmed = True
            break
        rate = nxt
    found["ladder_completed_per_s"] = found["completed_per_s"]
    found["ladder_offered_per_s"] = found.get("at_offered_per_s")
    # what the last hold sustained, min(completed, accepted, offered) as for a ladder step: a
    # hold that keeps up within the rule (completed ≥ 90 % of offered) may still complete less
    # than it was offered, and the offered rate would overstate the pipeline by up to 11 %
    found["completed_per_s"] = round(sustained, 1)
    found["at_offered_per_s"] = at
    found["confirmed"] = confirmed
    found["confirmations"] = held
    info(
        f"saturation {'confirmed' if confirmed else '[yellow]not confirmed[/yellow]'}: "
        f"{found['completed_per_s']} completed/s (the ladder's {found['ladder_completed_per_s']})"
    )
    return found


def _measured(
    step: ladder.Step, plan: Plan, cpu: CpuSampler, drained: dict[str, Any]
) -> dict[str, Any]:
    """One entry of `confirmations`: the hold's figures, why it missed, its CPU per order and
    the drain of its orders."""
    orders = round(step.completed_per_s * step.window_s)
    t1 = step.t_from + step.window_s
    per_order = window_ms_per_order(cpu.series, cpu.started, step.t_from, t1, orders)
    why = ladder.misses(step, plan.rule)
    return step.as_dict() | {
        "measured": True,
        "misses": why,
        "cpu_ms_per_order": per_order,
        **drained,
    }
