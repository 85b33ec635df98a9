"""Latency against load: tracked open-loop runs at fractions of the saturation point (25 %, 50 %,
90 % by default), each followed for `--grace` until every order of its customers is terminal
(the rest counted `lost`, 202 seen or not), and the ratios that put the saturation point beside
the gateway's accept-only capacity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bench import mainrun
from bench.mainrun import Load
from bench.procs import CpuSampler
from bench.stats import shown
from bench.tracker import Tracker
from bench.ui import info
from bench.workload import Customer


def point(fraction: float, figures: dict[str, Any]) -> dict[str, Any]:
    """One entry of `latency_by_load` from the summary (`mainrun.summary`) of its run."""
    return {
        "load_fraction": fraction,
        "offered_per_s": figures["offered_per_s"],
        # counts of requests sent and answered 202 (`bench.gate` fails a point that accepted
        # less than half of what it offered)
        "offered": figures.get("offered"),
        "accepted": figures.get("accepted"),
        "accepted_per_s": figures.get("accepted_per_s"),
        "completed_per_s": figures["completed_per_s"],
        "accept_p50_ms": figures["p50_accept_ms"],
        "accept_p99_ms": figures["p99_accept_ms"],
        # of that p99, what is the generator's and what the platform's (the main run's keys)
        "send_lag_p99_ms": figures.get("send_lag_p99_ms"),
        "service_p99_ms": figures.get("service_p99_ms"),
        "e2e_shipped_p50_ms": figures["p50_e2e_ms"],
        "e2e_shipped_p99_ms": figures["p99_e2e_ms"],
        "e2e_hops_ms": figures.get("e2e_hops_ms", {}),
        "e2e_publish_wait_ms": figures.get("e2e_publish_wait_ms", {}),
        "lost": figures["lost"],
        "stored_without_202": figures.get("stored_without_202", 0),
        "errors": figures["errors"],
        "error_reasons": figures.get("error_reasons", {}),
        "cpu_ms_per_order": figures["cpu_ms_per_order"],
        "cpu_steal_pct": figures.get("cpu_steal_pct", 0.0),
        "cpu_unit_ms": figures.get("cpu_unit_ms"),
        "maintenance_s": figures.get("maintenance_s"),
    }


async def latency_by_load(
    load: Load,
    saturation_per_s: float,
    fractions: Sequence[float],
    duration_s: int,
    people: Callable[[int], list[Customer]],
    dsn: str,
    cpu: CpuSampler,
) -> list[dict[str, Any]]:
    """A tracked run of `duration_s` at each fraction of `saturation_per_s` (customers of run
    i: `people(i)`); one `point` each."""
    out: list[dict[str, Any]] = []
    for i, fraction in enumerate(fractions):
        rate = round(fraction * saturation_per_s, 1)
        if rate <= 0:
            continue
        run_load = replace(
            load,
            rate=rate,
            concurrency=0,
            duration_s=duration_s,
            warmup_s=min(load.warmup_s, duration_s / 4),
            seed=load.seed + 11 + i,
        )
        info(f"load point {fraction:.0%} of saturation: {rate:g}/s for {duration_s}s")
        tracker = Tracker(dsn)
        await tracker.open()
        try:
            run = await mainrun.run(run_load, people(i), tracker, cpu)
            entry = point(fraction, mainrun.summary(run, tracker))
        finally:
            await tracker.close()
        info(
            f"  {fraction:.0%}: completed {entry['completed_per_s']}/s, accept p50/p99 "
            f"{shown(entry['accept_p50_ms'])} / {shown(entry['accept_p99_ms'])} ms, "
            f"accept→SHIPPED p50/p99 {shown(entry['e2e_shipped_p50_ms'])} / "
            f"{shown(entry['e2e_shipped_p99_ms'])} ms, "
            f"lost {entry['lost']}, a vacuum or analyze running {entry['maintenance_s']} s"
            + (f", refused {entry['errors']}" if entry["errors"] else "")
        )
        out.append(entry)
    return out


def capacity_ratios(result: dict[str, Any]) -> dict[str, float | None]:
    """`gateway_accept_capacity_per_s` (accepted/s of the gateway alone, the `capacity` phase)
    and `saturation_vs_accept_capacity` (the pipeline's saturation point over it)."""
    cap = (result.get("capacity") or {}).get("serve", {}).get("ok_rps") or None
    sat = result.get("saturation_completed_per_s") or None
    return {
        "gateway_accept_capacity_per_s": cap,
        "saturation_vs_accept_capacity": round(sat / cap, 3) if sat and cap else None,
    }
